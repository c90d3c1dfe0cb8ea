"""What DemonSGD and DemonAdam share: hyperparameter checks, the global iteration counter and T.

The counter lives in optimizer state under the string key ``"demon_step"`` (torch's
``Optimizer.state_dict`` keeps non-tensor keys as they are), so a checkpoint resumes on the same
β. It advances once per ``step()`` call, never once per parameter group: a public port that kept
it per group decayed k groups k times too fast.

The schedule's length T (``total_steps``) is a param-group hyperparameter, so ``load_state_dict``
restores the checkpoint's T, as torch restores a checkpoint's lr. Resuming with a longer run is
therefore explicit: ``set_total_steps(T)`` after loading (and a warning when the checkpoint's T
replaces a different one the optimizer was built with).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch

from ._schedule import check_beta_init, check_beta_min, check_delay_steps, check_total_steps, demon_beta

STEP_KEY = "demon_step"


def check_lr(lr: Any) -> None:
    """Raise ``ValueError`` unless ``lr`` is a finite float ≥ 0."""
    if isinstance(lr, torch.Tensor):
        raise ValueError(f"Invalid lr value: {lr!r} (a tensor lr is not supported; pass a float)")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
        raise ValueError(f"Invalid lr value: {lr!r} (expected a finite number >= 0)")


def check_weight_decay(weight_decay: Any) -> None:
    """Raise ``ValueError`` unless ``weight_decay`` is a finite float ≥ 0."""
    if (
        isinstance(weight_decay, bool)
        or not isinstance(weight_decay, (int, float))
        or not math.isfinite(weight_decay)
        or weight_decay < 0
    ):
        raise ValueError(f"Invalid weight_decay value: {weight_decay!r} (expected a number >= 0)")


def check_demon_group(beta_init: Any, total_steps: Any, delay_steps: Any = 0, beta_min: Any = 0.0) -> None:
    """Validate the Demon schedule's hyperparameters a param group may carry."""
    check_beta_init(beta_init)
    check_total_steps(total_steps)
    check_delay_steps(delay_steps, total_steps)
    check_beta_min(beta_min, beta_init)


def group_beta(step: int, group: dict[str, Any]) -> float:
    """β_t of one param group at iteration ``step`` (its own β_init, T, delay and floor)."""
    return demon_beta(
        step, group["total_steps"], group["beta_init"], delay_steps=group["delay_steps"], beta_min=group["beta_min"]
    )


class DemonStepMixin:
    """Owns the iteration counter and the per-group β_t lookup, and fills in the options added after
    a checkpoint was written (``LATER_OPTIONS``: each optimizer's names and defaults) when it loads."""

    state: Any
    param_groups: list[dict[str, Any]]
    LATER_OPTIONS: ClassVar[dict[str, Any]] = {
        "delay_steps": 0,
        "beta_min": 0.0,
        "decoupled_weight_decay": False,
        "maximize": False,
        "foreach": None,
    }

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        for group in self.param_groups:  # defaults for options added later, so old checkpoints load
            for name, default in self.LATER_OPTIONS.items():
                group.setdefault(name, default)

    @property
    def demon_step(self) -> int:
        """The number of ``step()`` calls made so far (t of the next step)."""
        return int(self.state.get(STEP_KEY, 0))

    def _advance(self) -> None:
        self.state[STEP_KEY] = self.demon_step + 1

    def current_betas(self) -> list[float]:
        """β_t for each param group at the next ``step()``."""
        return [group_beta(self.demon_step, g) for g in self.param_groups]

    def set_total_steps(self, total_steps: int) -> None:
        """Set T of every param group, e.g. to extend a resumed run: call it after ``load_state_dict``.

        From the next ``step()`` on, β follows the schedule of a run planned for ``total_steps``
        iterations from the start: β_t = demon_beta(t, total_steps, …) at the current t. Lengthening T
        mid-run therefore raises β (e.g. β_init 0.9, t = 500: 0.818 at T = 1000, 0.871 at T = 2000);
        the steps already taken are not replayed.

        Raises:
            ValueError: naming the bad value, for T < 1 or T not above a group's ``delay_steps``;
                then no group is changed.
        """
        for group in self.param_groups:
            check_demon_group(group["beta_init"], total_steps, group["delay_steps"], group["beta_min"])
        for group in self.param_groups:
            group["total_steps"] = total_steps

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's ``load_state_dict``, which restores each group's T; warns if that changes T.

        The checkpoint's T replaces the one this optimizer was built with, as torch does for lr;
        silently, that would turn a longer resumed run into one whose momentum is already 0. To extend
        the schedule, call ``set_total_steps`` after loading.
        """
        built = [group["total_steps"] for group in self.param_groups]
        super().load_state_dict(state_dict)  # type: ignore[misc]
        loaded = [group["total_steps"] for group in self.param_groups]
        if loaded != built:
            warnings.warn(
                f"load_state_dict: the checkpoint's total_steps {loaded} replace this optimizer's {built}; "
                "to extend the schedule call set_total_steps(T) after loading",
                UserWarning,
                stacklevel=2,
            )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)  # type: ignore[misc]
        try:  # checked after torch fills in the defaults; a rejected group must not stay behind
            self._check_group(self.param_groups[-1])
        except ValueError:
            self.param_groups.pop()
            raise

    def _check_group(self, group: dict[str, Any]) -> None:
        check_demon_group(group["beta_init"], group["total_steps"], group["delay_steps"], group["beta_min"])
        check_lr(group["lr"])
        check_weight_decay(group["weight_decay"])


def check_dense(grads: list[torch.Tensor], name: str) -> None:
    """Sparse gradients are not supported: raise a clear error rather than compute nonsense."""
    for g in grads:
        if g.is_sparse:
            raise RuntimeError(f"{name} does not support sparse gradients; use a dense embedding")


def run_kernel(
    name: str,
    single_tensor: Callable[..., None],
    multi_tensor: Callable[..., None],
    tensor_lists: Sequence[list[Any]],
    foreach: bool | None,
    **hyperparameters: Any,
) -> None:
    """The body of a functional step (``demon_sgd``, ``demon_adam``): refuse sparse gradients, pick the
    loop or the foreach kernel (torch's default when ``foreach`` is None) and run it, the foreach one
    block by block (``foreach_blocks``). ``tensor_lists`` starts with params and grads; every list is
    sliced alike."""
    params, grads = tensor_lists[0], tensor_lists[1]
    check_dense(grads, name)
    if foreach is None:
        foreach = default_foreach(params)
    kernel = multi_tensor if foreach else single_tensor
    for block in foreach_blocks(params) if foreach else [slice(None)]:
        kernel(*(tensors[block] for tensors in tensor_lists), **hyperparameters)


def step_grad(
    param: torch.Tensor,
    grad: torch.Tensor,
    lr: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
    /,
) -> torch.Tensor:
    """The gradient a loop kernel steps on: negated when maximising; with weight decay either g + λθ
    (L2, torch's default) or, decoupled, θ shrunk in place by (1 − ηλ) before the step (AdamW style)."""
    g = -grad if maximize else grad
    if weight_decay != 0:
        if decoupled_weight_decay:
            param.mul_(1.0 - lr * weight_decay)
        else:
            g = g.add(param, alpha=weight_decay)
    return g


def step_grads(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    lr: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
    /,
) -> list[torch.Tensor] | tuple[torch.Tensor, ...]:
    """``step_grad`` for the foreach kernels, with the same ops in the same order (bit-equal)."""
    g: list[torch.Tensor] | tuple[torch.Tensor, ...] = grads
    if maximize:
        g = torch._foreach_neg(g)
    if weight_decay != 0:
        if decoupled_weight_decay:
            torch._foreach_mul_(params, 1.0 - lr * weight_decay)
        else:
            g = torch._foreach_add(g, params, alpha=weight_decay)
    return g


# Elements per block when a foreach step runs on the CPU (see ``foreach_blocks``).
CPU_BLOCK_NUMEL = 1 << 18


def foreach_blocks(params: list[torch.Tensor]) -> list[slice]:
    """Slices of ``params`` for the foreach kernels: on the CPU, runs of about 2^18 elements each.

    A foreach step makes 3 (SGD) to 8 (Adam) passes over its tensors. Over a whole model each pass
    streams everything through memory; over a block of 2^18 elements (~5 MB of parameters,
    gradients, state and temporaries in float32) the later passes find it in cache. The ops are
    elementwise, so a block gives bit-identical results: only the speed changes (2.3× on a
    10M-parameter Demon Adam step on a 2-core CPU). On accelerators one launch per op is what
    counts, so they get a single block.
    """
    if not params or params[0].device.type != "cpu":
        return [slice(None)]
    blocks: list[slice] = []
    start = filled = 0
    for end, numel in enumerate((p.numel() for p in params), start=1):
        filled += numel
        if filled >= CPU_BLOCK_NUMEL:
            blocks.append(slice(start, end))
            start, filled = end, 0
    if start < len(params):
        blocks.append(slice(start, None))
    return blocks


def default_foreach(params: list[torch.Tensor]) -> bool:
    """torch's own default: the foreach kernel for native-device (CUDA) tensors, the loop on CPU."""
    from torch.optim.optimizer import _default_to_fused_or_foreach

    _, foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)
    return bool(foreach)
