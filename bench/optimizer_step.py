"""Optimizer step time: Demon's optimizers against torch's own, side by side in one run.

What it measures: the wall time of one ``optimizer.step()`` (gradients already in place) for

- ``DemonSGD(foreach=True)`` against ``torch.optim.SGD(momentum=0.9, foreach=True)``,
- ``DemonAdam(foreach=True)`` against ``torch.optim.Adam(foreach=True)``,
- torch's fused SGD / Adam driven by ``DemonMomentum`` against the same fused optimizer alone,
- the single-tensor paths (``foreach=False``), for information,

on two models: ~10M parameters in 50 tensors ("large": bandwidth-bound) and 2,000 tensors of
100–1,000 elements ("many-small": per-tensor overhead-bound).

Why: Demon must cost no more than the momentum it replaces; the target is a ratio ≤ 1.05 for the
foreach paths. The two candidates of a pair run interleaved within each repeat (A, B, then B, A)
so machine noise hits both alike, and each is summarised by the median of its per-step times.

What it is not: a training benchmark (no forward/backward) or a test; it always exits 0. Usage:

    python bench/optimizer_step.py [--device cpu|cuda] [--repeats N] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from demon import DemonAdam, DemonMomentum, DemonSGD

NEVER = 10**9  # total_steps far beyond the run: β stays at β_init = 0.9, as torch's momentum does
TARGET = 1.05

Step = Callable[[], None]
Factory = Callable[[list[torch.Tensor]], Step]


@dataclass(frozen=True)
class Pair:
    """One comparison: our candidate against torch's, on the same model."""

    case: str
    ours: Factory
    theirs: Factory
    targeted: bool  # whether the ≤ 1.05 target applies (foreach paths) or it is for information
    needs_fused: bool = False


def plain(make: Callable[[list[torch.Tensor]], torch.optim.Optimizer]) -> Factory:
    def factory(params: list[torch.Tensor]) -> Step:
        return make(params).step  # type: ignore[return-value]

    return factory


def with_demon_momentum(make: Callable[[list[torch.Tensor]], torch.optim.Optimizer]) -> Factory:
    def factory(params: list[torch.Tensor]) -> Step:
        opt = make(params)
        sched = DemonMomentum(opt, total_steps=NEVER)

        def step() -> None:
            opt.step()
            sched.step()

        return step

    return factory


def sgd(**kwargs: object) -> Callable[[list[torch.Tensor]], torch.optim.Optimizer]:
    return lambda params: torch.optim.SGD(params, lr=1e-3, momentum=0.9, **kwargs)  # type: ignore[arg-type]


def adam(**kwargs: object) -> Callable[[list[torch.Tensor]], torch.optim.Optimizer]:
    return lambda params: torch.optim.Adam(params, lr=1e-3, **kwargs)  # type: ignore[arg-type]


PAIRS = [
    Pair(
        "DemonSGD foreach vs SGD foreach",
        plain(lambda p: DemonSGD(p, lr=1e-3, beta_init=0.9, total_steps=NEVER, foreach=True)),
        plain(sgd(foreach=True)),
        targeted=True,
    ),
    Pair(
        "DemonAdam foreach vs Adam foreach",
        plain(lambda p: DemonAdam(p, lr=1e-3, beta_init=0.9, total_steps=NEVER, foreach=True)),
        plain(adam(foreach=True)),
        targeted=True,
    ),
    Pair(
        "SGD fused + DemonMomentum vs SGD fused",
        with_demon_momentum(sgd(fused=True)),
        plain(sgd(fused=True)),
        targeted=True,
        needs_fused=True,
    ),
    Pair(
        "Adam fused + DemonMomentum vs Adam fused",
        with_demon_momentum(adam(fused=True)),
        plain(adam(fused=True)),
        targeted=True,
        needs_fused=True,
    ),
    Pair(
        "DemonSGD loop vs SGD loop (info)",
        plain(lambda p: DemonSGD(p, lr=1e-3, beta_init=0.9, total_steps=NEVER, foreach=False)),
        plain(sgd(foreach=False)),
        targeted=False,
    ),
    Pair(
        "DemonAdam loop vs Adam loop (info)",
        plain(lambda p: DemonAdam(p, lr=1e-3, beta_init=0.9, total_steps=NEVER, foreach=False)),
        plain(adam(foreach=False)),
        targeted=False,
    ),
]


def model_shapes(quick: bool) -> dict[str, list[tuple[int, ...]]]:
    """ "large": 50 tensors of 448×448 (10.0M); "many-small": 2,000 tensors of 100–1,000 elements."""
    gen = torch.Generator().manual_seed(0)
    if quick:
        return {
            "large": [(128, 128)] * 50,
            "many-small": [(int(n),) for n in torch.randint(100, 1001, (200,), generator=gen)],
        }
    return {
        "large": [(448, 448)] * 50,
        "many-small": [(int(n),) for n in torch.randint(100, 1001, (2000,), generator=gen)],
    }


def make_params(shapes: list[tuple[int, ...]], device: torch.device) -> list[torch.Tensor]:
    """Fresh parameters with a fixed gradient each (not zeroed between steps: only step() is timed)."""
    gen = torch.Generator().manual_seed(1)
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=gen).to(device)
        p.grad = torch.randn(shape, generator=gen).to(device)
        params.append(p)
    return params


def fused_supported(device: torch.device) -> bool:
    p = torch.zeros(2, device=device)
    p.grad = torch.ones(2, device=device)
    try:
        torch.optim.SGD([p], lr=0.1, momentum=0.9, fused=True).step()
        torch.optim.Adam([p], lr=0.1, fused=True).step()
    except (RuntimeError, ValueError):
        return False
    return True


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pair(
    ours: Step, theirs: Step, device: torch.device, repeats: int, warmup: int
) -> tuple[list[float], list[float]]:
    """Per-step seconds of each candidate, interleaved A, B / B, A within the repeats."""
    for _ in range(warmup):
        ours()
        theirs()
    synchronize(device)
    samples: dict[str, list[float]] = {"ours": [], "theirs": []}
    for r in range(repeats):
        order = [("ours", ours), ("theirs", theirs)]
        for name, step in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            step()
            synchronize(device)
            samples[name].append(time.perf_counter() - start)
    return samples["ours"], samples["theirs"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per candidate (default 40)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per candidate (default 3)")
    parser.add_argument("--quick", action="store_true", help="small models, few repeats, one thread: a smoke run")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's; 1 with --quick)"
    )
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 5 if args.quick else 40
    if args.warmup is None:
        args.warmup = 1 if args.quick else 3
    if args.threads is None and args.quick:
        args.threads = 1  # a busy shared machine stalls multi-threaded steps by 100× at random
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available in this torch build / machine")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    fused = fused_supported(device)
    print(
        f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, "
        f"{args.repeats} repeats, median per-step ms, ratio = ours / torch (target <= {TARGET} where marked)"
    )
    header = f"{'case':<42} {'model':<11} {'ours ms':>9} {'torch ms':>9} {'ratio':>7}  target"
    print(header)
    print("-" * len(header))
    for pair in PAIRS:
        for model, shapes in model_shapes(args.quick).items():
            if pair.needs_fused and not fused:
                print(f"{pair.case:<42} {model:<11} {'fused is not supported on this device':>27}")
                continue
            ours = pair.ours(make_params(shapes, device))
            theirs = pair.theirs(make_params(shapes, device))
            ours_s, theirs_s = time_pair(ours, theirs, device, args.repeats, args.warmup)
            ours_ms, theirs_ms = statistics.median(ours_s) * 1e3, statistics.median(theirs_s) * 1e3
            ratio = ours_ms / theirs_ms
            verdict = ("ok" if ratio <= TARGET else "MISS") if pair.targeted else "info"
            print(f"{pair.case:<42} {model:<11} {ours_ms:9.3f} {theirs_ms:9.3f} {ratio:7.3f}  {verdict}")
            del ours, theirs
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
