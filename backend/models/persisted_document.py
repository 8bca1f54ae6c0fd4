"""GraphQL documents the server knows by hash: Apollo's automatic persisted queries, and the
trusted documents an operator loaded from a client's manifest (`crewql documents add`).

Stored in the database, not in process memory, so that every replica of the scaled mode knows a
document one of them was told about. Keyed by the SHA-256 of the text (hex), which is what APQ
clients send; `document_id` keeps a manifest's own id when it is something else (Relay's are
often MD5), for clients that send `documentId`. Not owned by a workspace: a document is content
addressed and carries no tenant data, and the trusted set describes the client builds deployed
against this server, which is the operator's decision, not a tenant's.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base
from backend.db.types import UTCDateTime
from backend.utils.time import utcnow


class PersistedDocument(Base):
    __tablename__ = "persisted_documents"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    document_id: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    # Loaded from a manifest by an operator: runs when CREWQL_TRUSTED_DOCUMENTS_ONLY is on.
    trusted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
