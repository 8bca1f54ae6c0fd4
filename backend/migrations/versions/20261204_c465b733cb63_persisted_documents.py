"""persisted documents: APQ registrations and trusted documents, shared by every replica

Revision ID: c465b733cb63
Revises: 5c1d2e7a9b30
Create Date: 2026-12-04 15:31:15.148865
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.db.types import UTCDateTime

revision: str = "c465b733cb63"
down_revision: str | None = "5c1d2e7a9b30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "persisted_documents",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("document_id", sa.String(length=200), nullable=True),
        sa.Column("trusted", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_persisted_documents")),
        sa.UniqueConstraint("document_id", name=op.f("uq_persisted_documents_document_id")),
    )


def downgrade() -> None:
    op.drop_table("persisted_documents")
