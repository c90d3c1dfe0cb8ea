"""Token expiry and revocation; the environment a study ran on.

Revision ID: 0002_issue9b
Revises: 0001
Create Date: 2026-11-30

- ``api_tokens.expires_at``: a token is refused after it (NULL: no expiry).
- ``api_tokens.revoked_at``: a revoked token is refused; the row stays, so the API still asks for one.
- ``studies.environment``: software versions, git commit, CPU and GPU models and seeds (JSON).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_issue9b"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("environment", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("environment")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("expires_at")
