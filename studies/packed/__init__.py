"""Packed execution: K trials of one study trained at once as one batched model (see ``trainer``).

- ``models``: stacked weights and batched kernels for a workload's model; what packs and what not.
- ``schedules``: each member's η_t and β_t, tabulated from its arm's schedules (``studies.schedules``).
- ``checkpoint``: the pack's state as one typed object (``PackState``) and where it is saved.
- ``trainer``: ``run_pack``, the packed driver of ``studies.training`` (``studies.runner`` is the
  per-trial one).
"""

from __future__ import annotations

from .models import PackedNet, packing_problem
from .trainer import PackError, run_pack

__all__ = ["PackError", "PackedNet", "packing_problem", "run_pack"]
