"""Packed models: K copies of one workload model as stacked weights, run as batched kernels.

Member k's weights are slice ``[k]`` of each stacked tensor, copied from the workload's own
``build_model`` under that member's seed, so its initialisation is its per-trial one. A
``nn.Linear`` keeps its weights as ``nn.Linear`` does, ``(K, out, in)``, and runs as one
``baddbmm(b, h, W.mT)`` whose weight gradient is ``bmm(gᵀ, h)`` (``_PackedLinear``): the very
GEMMs ``nn.Linear`` runs per trial, so each member's logits and gradients equal its per-trial ones
bit for bit (pre-transposed ``(K, in, out)`` weights would get autograd's ``hᵀg``, which a CPU BLAS
rounds differently for narrow layers). A
``nn.Conv2d`` becomes one grouped convolution (members × channels as the channel dimension,
``groups=K``); ReLU, max-pooling and flattening act per member. Activations are ``(K, B, ...)``
(members first) around linear layers and ``(B, K·C, H, W)`` around convolutions.

What packs: ``nn.Sequential`` (or a single ``nn.Linear``) of Linear, ReLU, Conv2d (zero padding,
one group), BatchNorm2d (per-member batch and running statistics: in the ``(B, K·C, H, W)`` layout
each member's channel is a channel of its own), MaxPool2d and Flatten, trained with the default
loss and evaluation of ``Workload`` (its batched ``member_loss`` / ``member_scores`` hooks, which a
workload may override). ``packing_problem`` says why anything else does not
pack (dropout's draws per member, residual, recurrent or generative models): such a workload is
refused at submission, never run unpacked silently.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..workloads import Workload
from ..workloads.images import ImageClassification

SUPPORTED = (nn.Linear, nn.ReLU, nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.Flatten)


def _layers(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, nn.Sequential):
        return list(model)
    return [model]


def _layer_problem(layer: nn.Module) -> str | None:
    if not isinstance(layer, SUPPORTED):
        kind = type(layer).__name__
        if "BatchNorm" in kind:
            return f"its model has {kind} (only BatchNorm2d packs)"
        if "Dropout" in kind:
            return f"its model has {kind} (dropout draws per member are not packed yet)"
        return f"its model has a {kind} layer; packing supports {', '.join(t.__name__ for t in SUPPORTED)}"
    if isinstance(layer, nn.Conv2d) and (layer.groups != 1 or layer.padding_mode != "zeros"):
        return "its model has a grouped or non-zero-padded Conv2d"
    if isinstance(layer, nn.BatchNorm2d) and not (layer.affine and layer.track_running_stats and layer.momentum):
        return "its model has a BatchNorm2d without affine weights, running statistics or a momentum"
    if isinstance(layer, nn.Flatten) and (layer.start_dim != 1 or layer.end_dim != -1):
        return "its model flattens other than from dimension 1"
    return None


def packing_problem(workload: Workload) -> str | None:
    """Why ``workload`` cannot run packed, or None when it can."""
    cls = type(workload)
    if cls.loss is not Workload.loss or cls.evaluate is not Workload.evaluate:
        return "it has its own loss or evaluation (packing needs them as the batched member_loss/member_scores hooks)"
    if isinstance(workload, ImageClassification):
        return "its images are read one by one with augmentation (packing needs in-memory tensors)"
    with torch.random.fork_rng(devices=[]):
        model = workload.build_model(0)
    if not isinstance(model, (nn.Sequential, nn.Linear)):
        return f"its model is a {type(model).__name__}, not an nn.Sequential of packable layers"
    for layer in _layers(model):
        problem = _layer_problem(layer)
        if problem:
            return problem
    return None


def _detached(module: nn.Module, name: str) -> torch.Tensor | None:
    """A module's parameter ``name`` as a plain detached tensor, or None when it has none."""
    value = getattr(module, name, None)
    return value.detach() if isinstance(value, torch.Tensor) else None


# torch's CPU ``bmm``/``baddbmm`` multiply matrices with fewer than this many multiply-adds
# (rows × columns × contraction) in a naive loop of its own rather than the BLAS GEMM that ``mm`` and
# ``addmm`` call (aten/src/ATen/native/LinearAlgebra.cpp), which sums in another order: such small
# products are run per member with the per-trial kernels instead.
SMALL_GEMM = 400


def _small(h: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether one member's GEMMs of this layer (all three have the same size) are below ``SMALL_GEMM``."""
    return h.shape[1] * weight.shape[1] * weight.shape[2] < SMALL_GEMM and h.device.type == "cpu"


class _PackedLinear(torch.autograd.Function):
    """``h @ Wᵀ + b`` per member with ``nn.Linear``'s own GEMMs, forward and backward.

    Forward: ``baddbmm(b, h, W.mT)`` (``nn.Linear``: ``addmm(b, x, W.t())``). Backward: the input
    gradient ``g W``, the weight gradient ``gᵀ h`` (``nn.Linear``'s, for weights stored ``(out, in)``;
    autograd's ``baddbmm`` backward would compute ``(hᵀ g)ᵀ``) and the bias gradient summed over
    the batch. Products below ``SMALL_GEMM`` run member by member as ``addmm``/``mm``."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx, inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        # forward with ctx, not setup_context: torch binds a setup_context Function's arguments with
        # inspect.signature on every call, which costs more than a small layer's GEMM.
        ctx.save_for_backward(inputs, weight)
        if _small(inputs, weight):
            rows = [
                torch.addmm(bias[k], inputs[k], weight[k].t()) if bias is not None else inputs[k].mm(weight[k].t())
                for k in range(inputs.shape[0])
            ]
            return torch.stack(rows)
        if bias is None:
            return torch.bmm(inputs, weight.mT)
        return torch.baddbmm(bias, inputs, weight.mT)

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        h, weight = ctx.saved_tensors  # type: ignore[attr-defined]
        needs_input, needs_weight, needs_bias = ctx.needs_input_grad  # type: ignore[attr-defined]
        grad_bias = grad.sum(dim=1, keepdim=True) if needs_bias else None
        if _small(h, weight):
            members = range(h.shape[0])
            grad_input = torch.stack([grad[k].mm(weight[k]) for k in members]) if needs_input else None
            grad_weight = torch.stack([grad[k].t().mm(h[k]) for k in members]) if needs_weight else None
            return grad_input, grad_weight, grad_bias
        grad_input = torch.bmm(grad, weight) if needs_input else None
        grad_weight = torch.bmm(grad.mT, h) if needs_weight else None
        return grad_input, grad_weight, grad_bias


def _rows(tensor: torch.Tensor, members: slice) -> torch.Tensor:
    """The rows of ``members``; the tensor itself for all of them (a full slice would cost a
    zero-fill and a copy in backward for every parameter, every step)."""
    if members == slice(None):
        return tensor
    return tensor[members]


class PackedNet:
    """K members of one ``nn.Sequential`` as stacked leaf tensors (``params``), with a batched forward."""

    def __init__(self, models: Sequence[nn.Module], device: torch.device) -> None:
        self.members = len(models)
        self.layers = _layers(models[0])
        self.params: list[torch.Tensor] = []
        self.slots: list[tuple[int, int | None]] = []  # per layer: (weight index, bias index) or (-1, None)
        self.running: dict[int, list[torch.Tensor]] = {}  # BatchNorm2d layer: [(K, C) mean, (K, C) var]
        self.training = True  # BatchNorm2d: batch statistics (and running-statistics updates) or running ones
        per_member = [_layers(m) for m in models]
        for index, layer in enumerate(self.layers):
            copies = [layers[index] for layers in per_member]
            if isinstance(layer, (nn.Linear, nn.Conv2d, nn.BatchNorm2d)):
                self.slots.append(self._stack(layer, copies, device))
            else:
                self.slots.append((-1, None))
            if isinstance(layer, nn.BatchNorm2d):
                mean = torch.stack([c.running_mean for c in copies]).to(device)  # type: ignore[misc]
                var = torch.stack([c.running_var for c in copies]).to(device)  # type: ignore[misc]
                self.running[index] = [mean.contiguous(), var.contiguous()]
        self.widest = 1  # largest activation of one member for one sample (elements), from the last forward
        self.activation_elements = 0  # all activations of one member for one sample, from the last forward

    def _stack(self, layer: nn.Module, copies: list[nn.Module], device: torch.device) -> tuple[int, int | None]:
        weights = [w for w in (_detached(c, "weight") for c in copies) if w is not None]
        biases = [b for b in (_detached(c, "bias") for c in copies) if b is not None]
        if isinstance(layer, nn.Linear):
            weight = torch.stack(weights)  # (K, out, in), as nn.Linear keeps it
            bias = torch.stack([b.unsqueeze(0) for b in biases]) if biases else None  # (K, 1, out)
        else:
            weight = torch.stack(weights)  # conv (K, out, in, kh, kw); batch norm (K, C)
            bias = torch.stack(biases) if biases else None  # (K, out) or (K, C)
        self.params.append(weight.to(device).contiguous().requires_grad_(True))
        weight_index = len(self.params) - 1
        if bias is None:
            return weight_index, None
        self.params.append(bias.to(device).contiguous().requires_grad_(True))
        return weight_index, len(self.params) - 1

    def adopt(self, params: list[torch.Tensor], running: dict[int, list[torch.Tensor]]) -> None:
        """Train on ``params`` and ``running`` (a resumed pack's saved tensors) instead of its own."""
        shapes = [p.shape for p in self.params], {i: [t.shape for t in r] for i, r in self.running.items()}
        if shapes != ([p.shape for p in params], {i: [t.shape for t in r] for i, r in running.items()}):
            raise ValueError("the saved pack's tensors do not fit this model")
        self.params = [p.detach().requires_grad_(True) for p in params]
        self.running = running

    def forward(self, inputs: torch.Tensor, members: slice = slice(None)) -> torch.Tensor:
        """Logits ``(k, B, classes)`` of ``members`` for inputs ``(k, B, ...)``: one batch per member."""
        k, batch = inputs.shape[0], inputs.shape[1]
        h = inputs
        channels_layout = False  # False: (k, B, ...); True: (B, k·C, H, W)
        widest, total = 0, 0
        for index, (layer, (w_index, b_index)) in enumerate(zip(self.layers, self.slots, strict=True)):
            bias = _rows(self.params[b_index], members) if b_index is not None else None
            if isinstance(layer, nn.Linear):
                h = _PackedLinear.apply(h, _rows(self.params[w_index], members), bias)
            elif isinstance(layer, nn.Conv2d):
                if not channels_layout:
                    h = h.transpose(0, 1).reshape(batch, -1, *h.shape[3:])
                    channels_layout = True
                weight = _rows(self.params[w_index], members)
                h = F.conv2d(
                    h,
                    weight.reshape(-1, *weight.shape[2:]),
                    bias.reshape(-1) if bias is not None else None,
                    layer.stride,
                    layer.padding,
                    layer.dilation,
                    groups=k,
                )
            elif isinstance(layer, nn.BatchNorm2d):
                # Over (B, k·C, H, W) each member's channel is its own channel: per-member statistics,
                # updated in place in the stacked running buffers (views of contiguous member rows).
                mean, var = self.running[index]
                h = F.batch_norm(
                    h,
                    _rows(mean, members).view(-1),
                    _rows(var, members).view(-1),
                    _rows(self.params[w_index], members).reshape(-1),
                    bias.reshape(-1) if bias is not None else None,
                    self.training,
                    layer.momentum or 0.0,
                    layer.eps,
                )
            elif isinstance(layer, nn.ReLU):
                h = torch.relu(h)
            elif isinstance(layer, nn.MaxPool2d):
                h = F.max_pool2d(h, layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.ceil_mode)
            elif isinstance(layer, nn.Flatten):
                h = h.reshape(batch, k, -1).transpose(0, 1) if channels_layout else h.flatten(2)
                channels_layout = False
            size = h.numel() // max(1, k * batch)
            widest, total = max(widest, size), total + size
        self.widest, self.activation_elements = widest, total
        return h

    def zero_members(self, members: torch.Tensor) -> None:
        """Zero every weight and gradient of ``members`` (indices): a frozen member stays finite."""
        with torch.no_grad():
            for p in self.params:
                p[members] = 0
                if p.grad is not None:
                    p.grad[members] = 0
            for mean, var in self.running.values():
                mean[members] = 0
                var[members] = 1

    def parameter_count(self) -> int:
        """Parameters of one member."""
        return sum(p[0].numel() for p in self.params)
