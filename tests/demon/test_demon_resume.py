"""Interrupt and resume: a checkpoint taken at step k and loaded into a fresh optimizer continues
exactly as if the run had never stopped.

The checkpoint goes through ``torch.save``/``torch.load`` (as a real one does, so no tensor is shared
with the original run), the fresh optimizer sits on fresh copies of the parameters, and the
comparison is exact (``torch.equal``), not approximate: the counter t and every buffer must come back.
Split points fall before a late parameter's first gradient (its state does not exist yet), inside the
schedule, and past ``total_steps``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
import torch

from demon import DemonAdam, DemonMomentum, DemonSGD

RUN = 80
TOTAL_STEPS = 50
LATE = 5  # the last parameter gets its first gradient at this step

Setup = tuple[torch.optim.Optimizer, DemonMomentum | None]


def groups(params: list[torch.Tensor], first: dict[str, Any], second: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"params": params[:2], **first}, {"params": params[2:], **second}]


def demon_sgd(foreach: bool) -> Callable[[list[torch.Tensor]], Setup]:
    def make(params: list[torch.Tensor]) -> Setup:
        g = groups(params, {}, {"beta_init": 0.5, "lr": 0.05, "total_steps": 30})
        return DemonSGD(g, lr=0.01, total_steps=TOTAL_STEPS, nesterov=True, foreach=foreach), None

    return make


def demon_adam(foreach: bool) -> Callable[[list[torch.Tensor]], Setup]:
    def make(params: list[torch.Tensor]) -> Setup:
        g = groups(params, {}, {"beta_init": 0.95, "lr": 3e-3, "total_steps": 70})
        return DemonAdam(g, lr=1e-3, total_steps=TOTAL_STEPS, weight_decay=0.01, foreach=foreach), None

    return make


def torch_with_scheduler(cls: type[torch.optim.Optimizer], **kwargs: Any) -> Callable[[list[torch.Tensor]], Setup]:
    def make(params: list[torch.Tensor]) -> Setup:
        key, first, second = ("momentum", 0.9, 0.6) if cls is torch.optim.SGD else ("betas", (0.9, 0.999), (0.6, 0.99))
        opt = cls(groups(params, {key: first}, {key: second, "lr": 0.02}), lr=0.01, **kwargs)
        return opt, DemonMomentum(opt, total_steps=TOTAL_STEPS)

    return make


CASES = {
    "DemonSGD-loop": demon_sgd(False),
    "DemonSGD-foreach": demon_sgd(True),
    "DemonAdam-loop": demon_adam(False),
    "DemonAdam-foreach": demon_adam(True),
    "SGD+DemonMomentum": torch_with_scheduler(torch.optim.SGD, momentum=0.9),
    "SGD-foreach+DemonMomentum": torch_with_scheduler(torch.optim.SGD, momentum=0.9, foreach=True),
    "Adam-fused+DemonMomentum": torch_with_scheduler(torch.optim.Adam, fused=True),
}


def make_problem() -> tuple[list[torch.Tensor], list[list[torch.Tensor | None]]]:
    gen = torch.Generator().manual_seed(0)
    shapes = [(6, 5), (5,), (3, 3), (4,)]
    init = [torch.randn(s, generator=gen) for s in shapes]
    grads = [
        [None if (i == len(shapes) - 1 and t < LATE) else torch.randn(s, generator=gen) for i, s in enumerate(shapes)]
        for t in range(RUN)
    ]
    return init, grads


def advance(setup: Setup, params: list[torch.Tensor], grads: list[list[torch.Tensor | None]]) -> None:
    opt, sched = setup
    for row in grads:
        for p, g in zip(params, row, strict=True):
            p.grad = None if g is None else g.clone()
        opt.step()
        if sched is not None:
            sched.step()


def checkpoint(setup: Setup, params: list[torch.Tensor]) -> dict[str, Any]:
    opt, sched = setup
    state = {
        "params": params,
        "optimizer": opt.state_dict(),
        "scheduler": None if sched is None else sched.state_dict(),
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded: dict[str, Any] = torch.load(buffer)
    return loaded


@pytest.mark.parametrize("split", [3, 37, 65])
@pytest.mark.parametrize("name", list(CASES))
def test_resumed_run_equals_uninterrupted_run(name: str, split: int) -> None:
    make = CASES[name]
    init, grads = make_problem()
    params = [p.clone() for p in init]
    setup = make(params)
    advance(setup, params, grads[:split])
    saved = checkpoint(setup, params)
    advance(setup, params, grads[split:])  # the uninterrupted run

    fresh_params = [p.clone() for p in saved["params"]]
    fresh_opt, fresh_sched = make(fresh_params)
    fresh_opt.load_state_dict(saved["optimizer"])
    if fresh_sched is not None:
        fresh_sched.load_state_dict(saved["scheduler"])
    if isinstance(fresh_opt, (DemonSGD, DemonAdam)):
        assert fresh_opt.demon_step == split
    advance((fresh_opt, fresh_sched), fresh_params, grads[split:])

    for resumed, uninterrupted in zip(fresh_params, params, strict=True):
        assert torch.equal(resumed, uninterrupted)
    if isinstance(fresh_opt, (DemonSGD, DemonAdam)):
        assert fresh_opt.demon_step == RUN


@pytest.mark.parametrize(
    ("cls", "added_later"),
    [
        (DemonSGD, {"nesterov": False, "maximize": False, "foreach": None}),
        (DemonAdam, {"decoupled_weight_decay": False, "maximize": False, "foreach": None}),
    ],
    ids=["DemonSGD", "DemonAdam"],
)
def test_checkpoint_without_later_options_loads_with_their_defaults(
    cls: type[torch.optim.Optimizer], added_later: dict[str, Any]
) -> None:
    """``__setstate__`` fills options a checkpoint predates, so old checkpoints keep loading."""
    params = [torch.ones(3)]
    opt = cls(params, lr=0.01, total_steps=10)
    params[0].grad = torch.ones(3)
    opt.step()
    old = checkpoint((opt, None), params)["optimizer"]
    for key in added_later:
        del old["param_groups"][0][key]
    fresh = cls([torch.ones(3)], lr=0.01, total_steps=10, maximize=True, foreach=True)
    fresh.load_state_dict(old)
    assert {key: fresh.param_groups[0][key] for key in added_later} == added_later
    assert fresh.demon_step == 1
