"""The CPU foreach path runs its kernel over cache-sized blocks of tensors: same bits, less traffic.

``foreach_blocks`` must cover every tensor exactly once, in order, and give a single block off the
CPU; the blocked step must equal the multi-tensor kernel run over the whole list bit for bit.
"""

from __future__ import annotations

import pytest
import torch

from demon._base import CPU_BLOCK_NUMEL, foreach_blocks
from demon.adam import _multi_tensor_demon_adam, demon_adam
from demon.sgd import _multi_tensor_demon_sgd, demon_sgd

# Sizes around the block size: whole blocks, a tensor larger than a block, a ragged tail.
NUMELS = [CPU_BLOCK_NUMEL // 4] * 6 + [CPU_BLOCK_NUMEL + 7] + [1000] * 5 + [CPU_BLOCK_NUMEL // 2] * 3


def tensors(seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, generator=gen) for n in NUMELS]


def test_blocks_cover_every_tensor_once_in_order() -> None:
    params = tensors(0)
    blocks = foreach_blocks(params)
    assert len(blocks) > 1
    covered = [i for block in blocks for i in range(len(params))[block]]
    assert covered == list(range(len(params)))
    for block in blocks[:-1]:  # every block but the last holds at least a block's worth
        assert sum(p.numel() for p in params[block]) >= CPU_BLOCK_NUMEL


@pytest.mark.parametrize("params", [[], [torch.empty(CPU_BLOCK_NUMEL * 3, device="meta")] * 3])
def test_single_block_when_empty_or_off_the_cpu(params: list[torch.Tensor]) -> None:
    assert foreach_blocks(params) == [slice(None)]


@pytest.mark.parametrize("decoupled", [False, True], ids=["l2", "decoupled"])
def test_blocked_sgd_step_is_bit_identical(decoupled: bool) -> None:
    hyper = {
        "beta": 0.9,
        "lr": 0.01,
        "weight_decay": 0.01,
        "decoupled_weight_decay": decoupled,
        "nesterov": True,
        "maximize": True,
    }
    blocked, whole = tensors(0), tensors(0)
    velocities = [tensors(1), tensors(1)]
    for _ in range(3):
        demon_sgd(blocked, tensors(2), velocities[0], foreach=True, **hyper)  # type: ignore[arg-type]
        _multi_tensor_demon_sgd(whole, tensors(2), velocities[1], **hyper)  # type: ignore[arg-type]
    assert all(torch.equal(a, b) for a, b in zip(blocked, whole, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(*velocities, strict=True))


@pytest.mark.parametrize("corrected", [False, True], ids=["paper", "first_moment_correction"])
def test_blocked_adam_step_is_bit_identical(corrected: bool) -> None:
    hyper = {
        "beta": 0.9,
        "beta2": 0.999,
        "lr": 1e-3,
        "eps": 1e-8,
        "weight_decay": 0.01,
        "decoupled_weight_decay": corrected,
        "first_moment_correction": corrected,
        "maximize": False,
    }
    blocked, whole = tensors(0), tensors(0)
    moments = [tensors(1), tensors(1)]
    second = [[t.abs() for t in tensors(3)], [t.abs() for t in tensors(3)]]
    counts = list(range(1, len(NUMELS) + 1))
    for _ in range(3):
        demon_adam(blocked, tensors(2), moments[0], second[0], counts, foreach=True, **hyper)  # type: ignore[arg-type]
        _multi_tensor_demon_adam(whole, tensors(2), moments[1], second[1], counts, **hyper)  # type: ignore[arg-type]
    for pair in ((blocked, whole), moments, second):
        assert all(torch.equal(a, b) for a, b in zip(*pair, strict=True))
