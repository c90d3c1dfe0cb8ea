"""End to end: a small MLP on scikit-learn's digits learns with each way of running Demon.

A convergence check, not a benchmark: 8×8 digits, 64-64-10 MLP, fixed seeds and split, a few hundred
mini-batch steps with ``total_steps`` equal to the run, as the paper intends. Each optimizer should
reach a test accuracy any reasonable classifier reaches here (≥ 0.9) within about a second.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from demon import DemonAdam, DemonMomentum, DemonSGD

EPOCHS = 12
BATCH = 64

Factory = Callable[[torch.nn.Module, int], tuple[torch.optim.Optimizer, DemonMomentum | None]]


def sgd_with_scheduler(model: torch.nn.Module, total_steps: int) -> tuple[torch.optim.Optimizer, DemonMomentum]:
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, foreach=True)
    return opt, DemonMomentum(opt, total_steps=total_steps)


OPTIMIZERS: dict[str, Factory] = {
    "DemonSGD": lambda model, t: (DemonSGD(model.parameters(), lr=0.03, total_steps=t), None),
    "DemonSGD-foreach": lambda model, t: (
        DemonSGD(model.parameters(), lr=0.03, total_steps=t, nesterov=True, foreach=True),
        None,
    ),
    "DemonAdam": lambda model, t: (DemonAdam(model.parameters(), lr=1e-3, total_steps=t), None),
    "SGD+DemonMomentum": sgd_with_scheduler,
}


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    to_x = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)  # noqa: E731
    return to_x(x_train), torch.tensor(y_train), to_x(x_test), torch.tensor(y_test)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_mlp_on_digits_reaches_high_accuracy(
    name: str, digits: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
) -> None:
    x_train, y_train, x_test, y_test = digits
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    batches_per_epoch = -(-len(x_train) // BATCH)
    opt, sched = OPTIMIZERS[name](model, EPOCHS * batches_per_epoch)
    gen = torch.Generator().manual_seed(0)
    for _ in range(EPOCHS):
        order = torch.randperm(len(x_train), generator=gen)
        for start in range(0, len(x_train), BATCH):
            index = order[start : start + BATCH]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x_train[index]), y_train[index]).backward()
            opt.step()
            if sched is not None:
                sched.step()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
    assert accuracy >= 0.9, f"{name}: test accuracy {accuracy:.3f}"
