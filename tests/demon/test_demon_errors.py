"""Bad hyperparameters raise ``ValueError`` naming the value, in ``__init__`` and in ``add_param_group``
(which then keeps no part of the rejected group); sparse gradients raise a clear ``RuntimeError``
instead of computing nonsense.

One table of (optimizer, kwargs, message), as torch/optim's tests do.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import torch

from demon import DemonAdam, DemonSGD

GOOD = {DemonSGD: {"lr": 0.1, "total_steps": 10}, DemonAdam: {"lr": 1e-3, "total_steps": 10}}

BAD_HYPERPARAMETERS: list[tuple[type[torch.optim.Optimizer], dict[str, Any], str]] = [
    (DemonSGD, {"lr": -1.0}, "Invalid lr value: -1.0"),
    (DemonSGD, {"lr": math.nan}, "Invalid lr value: nan"),
    (DemonSGD, {"lr": math.inf}, "Invalid lr value: inf"),
    (DemonSGD, {"lr": torch.tensor(0.1)}, "Invalid lr value: tensor(0.1000)"),
    (DemonSGD, {"beta_init": 1.0}, "Invalid beta_init value: 1.0"),
    (DemonSGD, {"beta_init": -0.1}, "Invalid beta_init value: -0.1"),
    (DemonSGD, {"total_steps": 0}, "Invalid total_steps value: 0"),
    (DemonSGD, {"total_steps": 1.5}, "Invalid total_steps value: 1.5"),
    (DemonSGD, {"weight_decay": -1.0}, "Invalid weight_decay value: -1.0"),
    (DemonAdam, {"lr": -1.0}, "Invalid lr value: -1.0"),
    (DemonAdam, {"lr": math.nan}, "Invalid lr value: nan"),
    (DemonAdam, {"beta_init": 1.0}, "Invalid beta_init value: 1.0"),
    (DemonAdam, {"beta_init": -0.1}, "Invalid beta_init value: -0.1"),
    (DemonAdam, {"total_steps": 0}, "Invalid total_steps value: 0"),
    (DemonAdam, {"total_steps": 1.5}, "Invalid total_steps value: 1.5"),
    (DemonAdam, {"beta2": 1.0}, "Invalid beta2 value: 1.0"),
    (DemonAdam, {"beta2": -0.1}, "Invalid beta2 value: -0.1"),
    (DemonAdam, {"eps": -1.0}, "Invalid eps value: -1.0"),
    (DemonAdam, {"weight_decay": -1.0}, "Invalid weight_decay value: -1.0"),
]


def case_id(value: Any) -> str:
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return ""


@pytest.mark.parametrize(("cls", "kwargs", "message"), BAD_HYPERPARAMETERS, ids=case_id)
def test_bad_hyperparameter_raises_naming_the_value(
    cls: type[torch.optim.Optimizer], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        cls([torch.zeros(2)], **{**GOOD[cls], **kwargs})


@pytest.mark.parametrize(("cls", "kwargs", "message"), BAD_HYPERPARAMETERS, ids=case_id)
def test_bad_hyperparameter_in_a_param_group_raises(
    cls: type[torch.optim.Optimizer], kwargs: dict[str, Any], message: str
) -> None:
    opt = cls([torch.zeros(2)], **GOOD[cls])
    with pytest.raises(ValueError, match=re.escape(message)):
        opt.add_param_group({"params": [torch.zeros(3)], **kwargs})
    assert len(opt.param_groups) == 1  # the rejected group was not kept


@pytest.mark.parametrize("cls", [DemonSGD, DemonAdam], ids=case_id)
def test_total_steps_is_required(cls: type[torch.optim.Optimizer]) -> None:
    with pytest.raises(TypeError, match="total_steps"):
        cls([torch.zeros(2)], lr=0.1)


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize("cls", [DemonSGD, DemonAdam], ids=case_id)
def test_sparse_gradients_raise(cls: type[torch.optim.Optimizer], foreach: bool) -> None:
    embedding = torch.nn.Embedding(10, 3, sparse=True)
    opt = cls(embedding.parameters(), **GOOD[cls], foreach=foreach)
    embedding(torch.tensor([1, 2, 2])).sum().backward()
    with pytest.raises(RuntimeError, match=f"{cls.__name__} does not support sparse gradients"):
        opt.step()
