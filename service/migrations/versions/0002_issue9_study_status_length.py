"""A study's status may be ``completed_with_failures``: widen ``studies.status`` to 32 characters.

Revision ID: 0002_issue9
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_issue9"
down_revision: str | Sequence[str] | None = "0002_issue11"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.alter_column("status", type_=sa.String(length=32), existing_type=sa.String(length=16), nullable=False)


def downgrade() -> None:
    # The narrower column cannot hold the new status: such studies read as plain "completed" again.
    op.execute("UPDATE studies SET status = 'completed' WHERE status = 'completed_with_failures'")
    with op.batch_alter_table("studies") as batch:
        batch.alter_column("status", type_=sa.String(length=16), existing_type=sa.String(length=32), nullable=False)
