"""workspace secrets, MCP servers, tools of agents and tasks, the http allowlist

Revision ID: 1e4443d15e67
Revises: c465b733cb63
Create Date: 2026-12-04 15:30:55.374968

New columns are added in place (ALTER TABLE ADD COLUMN on both databases, with a default for
the rows already there), never by batch mode: rebuilding `workspaces`, `agents` or `tasks` by
copy and drop would fire their ON DELETE CASCADE on SQLite (see the api_keys revision).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.db.types import UTCDateTime

revision: str = "1e4443d15e67"
down_revision: str | None = "c465b733cb63"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EMPTY_LIST = sa.text("'[]'")


def _owned_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    ]


def _owned_table(name: str, *columns: sa.Column[object], checks: Sequence[str] = ()) -> None:
    op.create_table(
        name,
        *columns,
        *_owned_columns(),
        *(sa.CheckConstraint(check, name=op.f(f"ck_{name}_transport")) for check in checks),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f(f"fk_{name}_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f(f"uq_{name}_workspace_id_name")),
    )
    op.create_index(op.f(f"ix_{name}_created_at"), name, ["created_at"], unique=False)
    op.create_index(op.f(f"ix_{name}_workspace_id"), name, ["workspace_id"], unique=False)


def upgrade() -> None:
    _owned_table(
        "secrets",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("set_by", sa.String(length=40), nullable=False),
    )
    _owned_table(
        "mcp_servers",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("transport", sa.String(length=20), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        checks=["transport IN ('streamable_http', 'sse')"],
    )
    op.add_column(
        "agents", sa.Column("tools", sa.JSON(), nullable=False, server_default=EMPTY_LIST)
    )
    op.add_column("agents", sa.Column("api_key_secret", sa.String(length=100), nullable=True))
    op.add_column("tasks", sa.Column("tools", sa.JSON(), nullable=False, server_default=EMPTY_LIST))
    op.add_column(
        "workspaces",
        sa.Column("http_allowlist", sa.JSON(), nullable=False, server_default=EMPTY_LIST),
    )


def downgrade() -> None:
    # SQLite has had DROP COLUMN since 3.35: in place, like the additions.
    op.drop_column("workspaces", "http_allowlist")
    op.drop_column("tasks", "tools")
    op.drop_column("agents", "api_key_secret")
    op.drop_column("agents", "tools")
    for name in ("mcp_servers", "secrets"):
        op.drop_index(op.f(f"ix_{name}_workspace_id"), table_name=name)
        op.drop_index(op.f(f"ix_{name}_created_at"), table_name=name)
        op.drop_table(name)
