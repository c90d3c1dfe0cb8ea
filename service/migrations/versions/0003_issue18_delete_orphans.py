"""Delete trials whose study is gone, and curves whose trial is gone.

On SQLite, every restart of the service left its pooled connection with foreign keys off (see
``service/migrations/env.py``), so deleting a study afterwards kept all its trial rows: thousands of
orphans in databases used for a day. The cause is fixed; this repairs existing databases. PostgreSQL
databases never had orphans (its foreign keys cannot be switched off), so there it deletes nothing.

Revision ID: 0003_issue18
Revises: 0002_issue9
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_issue18"
down_revision: str | Sequence[str] | None = "0002_issue9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Trials first: their curves then become orphans too and go in the second statement.
    op.execute("DELETE FROM trials WHERE NOT EXISTS (SELECT 1 FROM studies WHERE studies.id = trials.study_id)")
    op.execute(
        "DELETE FROM trial_epochs WHERE NOT EXISTS (SELECT 1 FROM trials WHERE trials.id = trial_epochs.trial_id)"
    )


def downgrade() -> None:
    """Nothing to undo: deleted orphans belonged to no study."""
