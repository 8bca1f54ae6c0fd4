"""task human input and output schema; a task's answer as JSON in its execution

Revision ID: 5c1d2e7a9b30
Revises: f6ed7f4e46dd
Create Date: 2026-12-04 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1d2e7a9b30"
down_revision: str | None = "f6ed7f4e46dd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN on both databases (no table rebuild): existing tasks ask for no input.
    op.add_column(
        "tasks",
        sa.Column("human_input", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("tasks", sa.Column("output_schema", sa.JSON(), nullable=True))
    op.add_column("execution_tasks", sa.Column("output_json", sa.JSON(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE DROP COLUMN (SQLite 3.35+): a batch rebuild of `tasks` would cascade-delete
    # every task's context rows on SQLite.
    op.drop_column("execution_tasks", "output_json")
    op.drop_column("tasks", "output_schema")
    op.drop_column("tasks", "human_input")
