"""How far ``DemonMomentum(torch.optim.Adam)`` is from the public ports' EMA-form Demon Adam, and
how far both are from the paper's Algorithm 2 (``DemonAdam``): the figures docs/demon.md quotes.

What it runs: softmax regression on fixed Gaussian data (256 × 20, 3 classes), full batch, in
float64, T = 300 steps, β_init = 0.9, from one initialisation, with

- ``DemonMomentum(torch.optim.Adam)``: β1 = β_t written each step; torch corrects m by 1 − β_t^k;
- three transcriptions of the EMA form m = β_t m + (1 − β_t) g as the ports write it: (a) the
  correction with the current β_t, (b) with β_init (a port with ``T_init``), (c) β counted from
  t = 1 instead of 0 (ports that start their iteration count at 1);
- ``DemonAdam`` (Algorithm 2, sum form) at the same lr.

It prints, per variant, the largest parameter difference from ``DemonMomentum(Adam)`` over the run
relative to the parameters' scale, closed loop (each on its own gradients: rounding differences can
grow where Adam oscillates near the optimum) and replaying ``DemonMomentum(Adam)``'s gradients
(only the update rule differs), and each run's final loss; then 1/(1 − β_t) at t/T = 0, 0.5, 0.9
(10, 5.5, 1.9): the ratio of the two forms' steady-state steps per unit gradient (measured at
β = 0.9 by tests/demon/test_demon_reference.py). Deterministic; not a test
(tests/demon/test_demon_variants.py asserts equality with (a) on replayed gradients, in float64).
Usage:

    python bench/ema_demon_adam.py
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from demon import DemonAdam, DemonMomentum, demon_beta

T, BETA_INIT, LR, BETA2, EPS = 300, 0.9, 1e-2, 0.999, 1e-8
Step = Callable[[torch.Tensor, int], None]


def problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 20, generator=gen, dtype=torch.float64)
    y = (x[:, :3] + 0.5 * torch.randn(256, 3, generator=gen, dtype=torch.float64)).argmax(dim=1)
    w0 = 0.1 * torch.randn(20, 3, generator=gen, dtype=torch.float64)
    return x, y, w0


def loss_of(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(x @ w, y)


def ema_port(w: torch.Tensor, *, correction: str, offset: int) -> Step:
    """The EMA form m = β m + (1 − β) g with Adam's corrections, ε outside the root (in place on w)."""
    m, e = torch.zeros_like(w), torch.zeros_like(w)

    def step(g: torch.Tensor, t: int) -> None:
        beta = demon_beta(t + offset, T, BETA_INIT)
        k = t + 1
        m.mul_(beta).add_((1 - beta) * g)
        e.mul_(BETA2).add_((1 - BETA2) * g * g)
        c = beta if correction == "current" else BETA_INIT
        w.sub_(LR * (m / (1 - c**k)) / ((e / (1 - BETA2**k)).sqrt() + EPS))

    return step


def torch_optimizer(w: torch.Tensor, kind: str) -> Step:
    w.requires_grad_(False)
    if kind == "algorithm2":
        opt: torch.optim.Optimizer = DemonAdam([w], lr=LR, beta_init=BETA_INIT, total_steps=T)
        sched = None
    else:
        opt = torch.optim.Adam([w], lr=LR, betas=(BETA_INIT, BETA2), eps=EPS, foreach=False)
        sched = DemonMomentum(opt, total_steps=T)

    def step(g: torch.Tensor, t: int) -> None:
        w.grad = g
        opt.step()
        if sched is not None:
            sched.step()

    return step


def trajectory(
    make: Callable[[torch.Tensor], Step], replay: list[torch.Tensor] | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor], float]:
    """(parameters after each step, the gradients used, final loss); ``replay`` feeds given gradients."""
    x, y, w0 = problem()
    w = w0.clone()
    step = make(w)
    path, grads = [], []
    for t in range(T):
        if replay is None:
            wg = w.detach().clone().requires_grad_(True)
            (g,) = torch.autograd.grad(loss_of(wg, x, y), wg)
        else:
            g = replay[t]
        grads.append(g)
        step(g, t)
        path.append(w.detach().clone())
    return path, grads, float(loss_of(w.detach(), x, y))


def max_relative_gap(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((p - q).abs().max() / q.abs().max()) for p, q in zip(a, b, strict=True))


def main() -> None:
    makers: dict[str, Callable[[torch.Tensor], Step]] = {
        "DemonMomentum(Adam)": lambda w: torch_optimizer(w, "scheduled"),
        "port (a) current-beta correction": lambda w: ema_port(w, correction="current", offset=0),
        "port (b) beta_init correction": lambda w: ema_port(w, correction="init", offset=0),
        "port (c) beta counted from t=1": lambda w: ema_port(w, correction="current", offset=1),
        "DemonAdam (Algorithm 2)": lambda w: torch_optimizer(w, "algorithm2"),
    }
    ours, grads, _ = trajectory(makers["DemonMomentum(Adam)"])
    print(f"softmax regression, float64, T={T}, beta_init={BETA_INIT}, lr={LR}")
    print("max |dtheta|/|theta| against DemonMomentum(Adam): closed loop (own gradients) | replaying its gradients")
    for name, make in makers.items():
        path, _, final = trajectory(make)
        replayed, _, _ = trajectory(make, replay=grads)
        closed, open_loop = max_relative_gap(path, ours), max_relative_gap(replayed, ours)
        print(f"  {name:34s} final loss {final:.6f}   {closed:.2e} | {open_loop:.2e}")
    print("steady-state step per unit gradient, Algorithm 2 over the EMA form, 1/(1 - beta_t) (computed, not run):")
    for fraction in (0.0, 0.5, 0.9):
        beta = demon_beta(round(fraction * T), T, BETA_INIT)
        print(f"  t/T = {fraction:.1f}: beta_t = {beta:.3f}, 1/(1 - beta_t) = {1 / (1 - beta):.2f}")


if __name__ == "__main__":
    main()
