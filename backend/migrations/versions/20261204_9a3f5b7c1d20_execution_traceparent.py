"""execution traceparent: the W3C trace context of the request that launched it

Revision ID: 9a3f5b7c1d20
Revises: 7e4b9c2d1a60
Create Date: 2026-12-04 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9a3f5b7c1d20"
down_revision: str | None = "7e4b9c2d1a60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no rebuild of `executions`, whose foreign keys would cascade on SQLite).
    op.add_column("executions", sa.Column("traceparent", sa.String(length=55), nullable=True))


def downgrade() -> None:
    op.drop_column("executions", "traceparent")
