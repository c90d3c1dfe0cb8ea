#!/usr/bin/env bash
# The prepared check for a machine with an NVIDIA GPU.
#
#   scripts/gpu-check.sh [--dry-run] [--all] [OUT_DIR]   (default OUT_DIR: gpu-check-results/)
#
# By default (under 5 minutes; needs a CUDA build of torch): one reduced Fig. 2 panel end to end,
# `bench/fig2_panel.py` (the VGG-16/CIFAR-100 panel's 3 arms on its 11 x 6 grid, a synthetic MLP of
# its shapes): per trial vs packed on the GPU, trials/s, the speed-up, peak GPU memory, and the
# replication report on the packed results. `--all` then runs the older checks as well:
# 1. bench/optimizer_step.py on CUDA: Demon's foreach kernels and DemonMomentum on fused SGD/Adam.
# 2. bench/packed.py on CUDA, digits MLP: per trial vs packed in process, and per-trial Ray trials
#    with a fractional GPU (gpu: 0.25, four trials per GPU) vs packs as Ray trials.
# 3. bench/packed.py on CUDA, digits CNN (grouped convolution), in process.
# 4. bench/packed.py on CUDA, CIFAR-shaped synthetic data (3,072 inputs, 10 classes, a 512-wide MLP):
#    ResNet-20 itself does not pack yet (BatchNorm), so this is the CIFAR-sized input, not the model.
# 5. A per-trial study on Ray with fractional GPUs end to end: `demonlab run digits_cnn_gpu.yaml`.
# `--dry-run` runs the Fig. 2 panel step on the CPU at tiny sizes (no GPU needed): it shows that the
# script starts and finishes, not any speed. Each step has its own time limit; the figures go to
# OUT_DIR/*.txt and the summary to stdout.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY_RUN=0
ALL=0
OUT=gpu-check-results
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --all) ALL=1 ;;
    -*) echo "gpu-check.sh: unknown option $arg (use --dry-run, --all)" >&2; exit 2 ;;
    *) OUT="$arg" ;;
  esac
done
mkdir -p "$OUT"
PY="${PYTHON:-.venv/bin/python}"
export OMP_NUM_THREADS=1

step() {  # step NAME SECONDS COMMAND...
  local name="$1" limit="$2"; shift 2
  echo "== $name"
  local started=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  tail -n 14 "$OUT/$name.txt"
  echo "-- $name: exit $rc after $((SECONDS - started)) s"
  return $rc
}

if [ "$DRY_RUN" = 1 ]; then
  step fig2_panel_dry_run 300 "$PY" bench/fig2_panel.py --device cpu --dry-run
  exit $?
fi

"$PY" - <<'PYEOF' | tee "$OUT/device.txt" || exit 1
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"no CUDA device visible to torch {torch.__version__} (install a CUDA build of torch==2.13.0)")
print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PYEOF
date -u +"%Y-%m-%d %H:%M UTC" | tee -a "$OUT/device.txt"

step fig2_panel 240 "$PY" bench/fig2_panel.py --device cuda
PANEL_RC=$?
if [ "$ALL" = 0 ]; then
  echo "done: figures in $OUT/ (record them in README.md with the date and the GPU; --all runs the other checks)"
  exit $PANEL_RC
fi

step optimizer_step 60 "$PY" bench/optimizer_step.py --device cuda --repeats 20
step packed_digits_mlp 90 "$PY" bench/packed.py --device cuda --gpu 0.25 --num-cpus 4 --limit 80
step packed_digits_cnn 50 "$PY" bench/packed.py --device cuda --skip-ray \
  --spec studies/examples/digits_cnn.yaml --limit 24

cat > "$OUT/cifar_shaped.yaml" <<'YAML'
name: cifar-shaped-synthetic
workload: synthetic
workload_params: {features: 3072, classes: 10, hidden: 512, n_train: 5000}
arms: [demon_sgdm, sgdm_cosine]
lr: [0.01, 0.03, 0.1]
beta_init: [0.8, 0.9]
seeds: 2
epochs: 2
batch_size: 128
YAML
step packed_cifar_shaped 50 "$PY" bench/packed.py --device cuda --skip-ray --spec "$OUT/cifar_shaped.yaml"
step ray_fractional_gpu 90 "${DEMONLAB:-.venv/bin/demonlab}" run studies/examples/digits_cnn_gpu.yaml \
  --executor ray --out "$OUT/digits_cnn_gpu"
echo "done: figures in $OUT/ (record them in README.md with the date and the GPU)"
