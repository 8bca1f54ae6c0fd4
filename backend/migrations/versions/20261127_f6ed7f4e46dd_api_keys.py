"""api keys, and the key that launched each execution

Revision ID: f6ed7f4e46dd
Revises: f610aef76589
Create Date: 2026-11-27 10:58:10.430113
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

from backend.db.types import UTCDateTime

revision: str = "f6ed7f4e46dd"
down_revision: str | None = "f610aef76589"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("public_id", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("role IN ('viewer', 'editor', 'admin')", name=op.f("ck_api_keys_role")),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_api_keys_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("public_id", name=op.f("uq_api_keys_public_id")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_api_keys_workspace_id"), ["workspace_id"], unique=False
        )

    _add_execution_key()


def _add_execution_key() -> None:
    with _sqlite_foreign_keys_off(), op.batch_alter_table("executions") as batch_op:
        batch_op.add_column(sa.Column("api_key_id", sa.Uuid(), nullable=True))
        batch_op.create_index(
            "ix_executions_api_key_id_status", ["api_key_id", "status"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_executions_api_key_id_api_keys"),
            "api_keys",
            ["api_key_id"],
            ["id"],
            ondelete="SET NULL",
        )


@contextmanager
def _sqlite_foreign_keys_off() -> Iterator[None]:
    """SQLite's procedure for a table change ALTER TABLE cannot make (sqlite.org/lang_altertable
    .html, "Making Other Kinds Of Table Schema Changes"): foreign keys off, copy, check, on.

    Batch mode rebuilds `executions` by copy, drop and rename. With foreign keys on, dropping the
    old table deletes every execution's events and tasks (ON DELETE CASCADE) and clears every
    `parent_id`; Alembic's batch documentation asks for foreign keys off. The pragma is a no-op
    inside a transaction, and every transaction of ours begins with BEGIN IMMEDIATE
    (db/engine.py), so the one in progress is committed first and a new one begun after it.
    A plain `ALTER TABLE ADD COLUMN ... REFERENCES` would be in place, but SQLAlchemy cannot
    reflect the name or ON DELETE of a column-level constraint, so models and database would
    never agree (tests/integration/test_migrations.py).
    """
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        yield
        return
    bind.exec_driver_sql("COMMIT")
    bind.exec_driver_sql("PRAGMA foreign_keys=OFF")
    bind.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        yield
        broken = bind.exec_driver_sql("PRAGMA foreign_key_check").all()
        if broken:
            raise RuntimeError(f"foreign keys broken by the migration: {broken[:5]}")
        bind.exec_driver_sql("COMMIT")
    except BaseException:
        bind.exec_driver_sql("ROLLBACK")
        raise
    finally:
        bind.exec_driver_sql("PRAGMA foreign_keys=ON")
        # The transaction SQLAlchemy believes is open, for the rest of the migration.
        bind.exec_driver_sql("BEGIN IMMEDIATE")


def downgrade() -> None:
    with _sqlite_foreign_keys_off(), op.batch_alter_table("executions") as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_executions_api_key_id_api_keys"), type_="foreignkey"
        )
        batch_op.drop_index("ix_executions_api_key_id_status")
        batch_op.drop_column("api_key_id")

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_api_keys_created_at"))

    op.drop_table("api_keys")
