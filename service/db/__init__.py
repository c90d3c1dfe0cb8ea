"""Persistence: the schema (``models``), engines and the session scope (``engine``), the data-access
layer (``dal``) and the migration runner (``migrations``). SQLite by default, PostgreSQL when shared."""

from __future__ import annotations

from .engine import make_engine, session_scope
from .migrations import is_at_head, upgrade_to_head
from .models import ApiToken, Base, Study, StudyStatus, Trial, TrialEpoch

__all__ = [
    "ApiToken",
    "Base",
    "Study",
    "StudyStatus",
    "Trial",
    "TrialEpoch",
    "is_at_head",
    "make_engine",
    "session_scope",
    "upgrade_to_head",
]
