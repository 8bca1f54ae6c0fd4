"""The typed context every resolver receives.

It carries services and per-operation DataLoaders, never a live database session: resolvers run
concurrently and a websocket's context lives for hours (see DESIGN.md §2).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from backend.api.graphql.loaders import Loaders
from backend.config.settings import Settings
from backend.services.container import Services


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    settings: Settings
    services: Services
    workspace_id: uuid.UUID
    loaders: Loaders
    connection_params: dict[str, Any] | None = field(default=None)

    def renew_loaders(self) -> None:
        """A websocket keeps one context for all its operations; each gets fresh caches."""
        self.loaders = Loaders(self.services, self.workspace_id)


Info = StrawberryInfo[Context, None]
