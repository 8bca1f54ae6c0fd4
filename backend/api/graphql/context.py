"""The typed context every resolver receives.

It carries services and per-operation DataLoaders, never a live database session: resolvers run
concurrently and a websocket's context lives for hours (docs/architecture.md, section 4).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from backend.api.graphql.loaders import Loaders
from backend.config.settings import Settings
from backend.core.auth import Unauthenticated
from backend.core.identity import Principal
from backend.services.bundle import Services

if TYPE_CHECKING:
    from backend.api.graphql.shared_events import SharedEvents


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    settings: Settings
    services: Services
    loaders: Loaders
    # Who is calling: set before any operation runs (HTTP: by the view; websockets: once the
    # `connection_init` payload's key is checked). None only before that.
    principal: Principal | None = None
    connection_params: dict[str, Any] | None = field(default=None)
    # The process's memo of per-event subscription results (shared_events.py); None: not shared.
    shared_events: SharedEvents | None = None

    @property
    def workspace_id(self) -> uuid.UUID:
        """The caller's workspace: every read and write is scoped to it."""
        if self.principal is None:
            raise Unauthenticated("no principal")
        return self.principal.workspace_id

    @property
    def api_key_id(self) -> uuid.UUID | None:
        """The caller's key (None with authentication off): executions it launches count
        against its cap on running executions."""
        return self.principal.key_id if self.principal is not None else None

    def renew_loaders(self) -> None:
        """A websocket keeps one context for all its operations; each gets fresh caches."""
        self.loaders = Loaders(self.services, self.workspace_id)


Info = StrawberryInfo[Context, None]
