"""A table of finished studies' computed reports (``StudyReport``): a 100,000-trial study's
sensitivity report takes seconds to compute, and was computed again by the first visitor after every
restart.

Revision ID: 0004_issue18
Revises: 0003_issue18
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0004_issue18"
down_revision: str | Sequence[str] | None = "0003_issue18"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "study_reports",
        sa.Column("study_id", sa.String(length=12), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("progress", sa.String(length=400), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_study_reports_study_id_studies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("study_id", "key", name=op.f("pk_study_reports")),
    )


def downgrade() -> None:
    op.drop_table("study_reports")
