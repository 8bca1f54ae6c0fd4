"""human input: a launch's wait limit, the current wait's deadline, the response to resume with

Revision ID: 7e4b9c2d1a60
Revises: 1e4443d15e67
Create Date: 2026-12-04 15:55:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from backend.db.types import UTCDateTime

revision: str = "7e4b9c2d1a60"
down_revision: str | None = "1e4443d15e67"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain ADD/DROP COLUMN (SQLite 3.35+ and PostgreSQL): no rebuild of `executions`, whose
# foreign keys would otherwise cascade on SQLite.
COLUMNS: tuple[sa.Column[Any], ...] = (
    sa.Column("input_timeout_seconds", sa.Float(), nullable=True),
    sa.Column("input_deadline_at", UTCDateTime(), nullable=True),
    sa.Column("input_response", sa.JSON(), nullable=True),
)


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("executions", column)


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.drop_column("executions", column.name)
