"""Workspace secrets: model keys and tool credentials, encrypted at rest.

`ciphertext` is a Fernet token (core/secret_box.py) made with the deployment's key; nothing else
in the row is secret. `set_by` names who stored the current value (an API key's public prefix,
`local` with authentication off, or `cli`), and `updated_at` when.
"""

from __future__ import annotations

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base
from backend.models.mixins import IdMixin, TimestampMixin, WorkspaceOwnedMixin


class Secret(IdMixin, WorkspaceOwnedMixin, TimestampMixin, Base):
    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))
    ciphertext: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(40))
