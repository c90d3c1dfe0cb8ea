"""An index on trials (study_id, updated_at): a study's event stream reads the trials recorded since
its cursor, so it reads those rows only, not every finished trial of a 100,000-trial study.

Revision ID: 0002_issue11
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002_issue11"
down_revision: str | Sequence[str] | None = "0002_issue9b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_trials_study_id_updated_at"), "trials", ["study_id", "updated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_trials_study_id_updated_at"), table_name="trials")
