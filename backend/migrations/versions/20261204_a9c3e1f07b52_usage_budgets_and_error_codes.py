"""usage and cost per task, launch budgets, and why an execution failed as a code

Revision ID: a9c3e1f07b52
Revises: 9a3f5b7c1d20
Create Date: 2026-12-04 15:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a9c3e1f07b52"
down_revision: str | None = "9a3f5b7c1d20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain ADD/DROP COLUMN (no constraint, no index) is in place on SQLite (3.35+) and PostgreSQL:
# no table rebuild, so no foreign key cascade to guard against.
EXECUTION_COLUMNS = (
    sa.Column("max_tokens", sa.Integer(), nullable=True),
    sa.Column("max_cost_usd", sa.Float(), nullable=True),
    sa.Column("error_code", sa.String(length=40), nullable=True),
)
TASK_COLUMNS = (
    sa.Column("model", sa.String(length=200), nullable=True),
    sa.Column("input_tokens", sa.Integer(), server_default="0", nullable=False),
    sa.Column("output_tokens", sa.Integer(), server_default="0", nullable=False),
    sa.Column("requests", sa.Integer(), server_default="0", nullable=False),
    sa.Column("cost_usd", sa.Float(), server_default="0", nullable=True),
)


def upgrade() -> None:
    for column in EXECUTION_COLUMNS:
        op.add_column("executions", column)
    for column in TASK_COLUMNS:
        op.add_column("execution_tasks", column)


def downgrade() -> None:
    for column in TASK_COLUMNS:
        op.drop_column("execution_tasks", column.name)
    for column in EXECUTION_COLUMNS:
        op.drop_column("executions", column.name)
