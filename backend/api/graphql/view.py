"""The GraphQL endpoint: Strawberry's ASGI view, made to follow the GraphQL-over-HTTP spec.

What we add to Strawberry's view, and why:
- Every request error is a GraphQL error in JSON with `extensions.code` and the right status
  (Strawberry answers them in plain text): malformed JSON 400, wrong content type 415, oversized
  body 413, a mutation over GET 405, an unknown operation name 400.
- `application/graphql-response+json` when the client accepts it; then a request that never
  reached execution (parse, validation, variables) answers 400, as the spec asks.
- A request error has no `data` key, whichever the media type (GraphQL spec, "Response").
- A bug never reaches Starlette's plain-text 500: it is logged and answered as a masked
  GraphQL error, so a client always gets a body it can parse.
- JSON is encoded with orjson; GraphiQL is served from our own assets (works offline).
- Subscriptions (and any operation) stream over HTTP too: Apollo's multipart protocol and
  graphql-sse, held to the websocket's limits (streaming.py); a subscription sent without a
  streaming `Accept` gets a 406 that names the transports that carry it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import timedelta
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from loguru import logger
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from backend.api.graphiql import graphiql_html
from backend.api.graphql.authentication import RevocationWatcher, authenticate, check_rate
from backend.api.graphql.context import Context
from backend.api.graphql.errors import (
    UNEXPECTED_ERROR,
    CodedHTTPException,
)
from backend.api.graphql.extensions import is_expected
from backend.api.graphql.guards import UNKNOWN_ADDRESS, ClientGuards
from backend.api.graphql.loaders import Loaders
from backend.api.graphql.negotiation import (
    GRAPHQL_RESPONSE,
    JSON,
    RequestAdapter,
    negotiate,
    prefers_stream,
)
from backend.api.graphql.persisted import fill_query
from backend.api.graphql.request_errors import (
    BodyTooLarge,
    format_request_error,
    http_error,
    is_request_error,
    limited_body,
)
from backend.api.graphql.shared_events import SharedEvents
from backend.api.graphql.streaming import (
    PROTOCOLS,
    STREAM_TRANSPORTS,
    SUBSCRIPTION_NEEDS_STREAM,
    StreamSlots,
    too_many_streams_message,
)
from backend.api.graphql.websocket import LegacyWSHandler, TransportWSHandler
from backend.api.graphql.ws_frames import GuardedWebSocket
from backend.config.settings import Settings
from backend.core.auth import RateLimited, Unauthenticated
from backend.services.bundle import Services

# JSON whose first token opens an object or an array: the only shapes a request body can have.
JSON_CONTAINER = re.compile(rb"[ \t\r\n]*[{\[]")

# A websocket's loaders before its key is checked: a workspace that cannot exist. No operation
# runs before then (Strawberry closes the socket with 4401), and each renews its loaders.
NO_WORKSPACE = uuid.UUID(int=0)


class GraphQLView(GraphQL[Context, None]):
    request_adapter_class = RequestAdapter
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler
    websocket_adapter_class = GuardedWebSocket
    stream_transport_classes_by_protocol = STREAM_TRANSPORTS

    def __init__(self, schema: Any, settings: Settings, services: Services) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            allowed_origins=tuple(settings.allowed_origin_list),
            subscription_protocols=PROTOCOLS,
            connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_seconds),
        )
        self.settings = settings
        # Per client address: failed key checks, unauthenticated websockets (guards.py).
        self.guards = ClientGuards(settings)
        self.services = services
        # Open websockets and HTTP streams per key, closed within about a second when their key
        # is revoked.
        self.revocations = RevocationWatcher(services)
        self.streams = StreamSlots(services, self.revocations)
        # Subscribers of one selection share each event's execution and encoded payload.
        self.shared_events = SharedEvents(enabled=settings.subscription_sharing)

    # ------------------------------------------------------------------ ASGI entry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        limit = self.settings.max_body_bytes
        headers = dict(scope["headers"])
        media_type = negotiate(headers.get(b"accept", b"").decode("latin-1"))
        declared = headers.get(b"content-length")
        try:
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise BodyTooLarge
            request = Request(scope, receive=limited_body(receive, limit))
            refusal = await self.admit(request, media_type)
            response = refusal or await self.run(request)
        except BodyTooLarge:
            response = http_error(413, f"The request body exceeds {limit} bytes.", media_type)
        except HTTPException as exc:
            code = exc.code if isinstance(exc, CodedHTTPException) else None
            response = http_error(exc.status_code, exc.reason, media_type, code=code)
        except Exception:  # a bug of ours: logged, and answered as GraphQL, never as plain text
            logger.exception("unexpected error answering {} {}", scope["method"], scope["path"])
            response = http_error(500, UNEXPECTED_ERROR, media_type)
        await response(scope, receive, send)

    async def admit(self, request: Request, media_type: str) -> Response | None:
        """Authenticates the request and takes a token of its key's rate; None when it may
        run, else the 401 or 429 answer. GraphiQL's page needs no key (its requests do)."""
        if self.graphql_ide and self.should_render_graphql_ide(request):
            return None  # the page only; no operation runs on this request
        address = request.client.host if request.client is not None else UNKNOWN_ADDRESS
        try:
            self.guards.check_address(address)
            principal = await authenticate(
                self.services, self.settings, request.headers.get("authorization"), "http"
            )
            check_rate(self.services, principal)
        except Unauthenticated as error:
            self.guards.auth_failed(address)
            return http_error(
                401, error.message, media_type, headers={"WWW-Authenticate": "Bearer"}
            )
        except RateLimited as error:
            return http_error(
                429,
                error.message,
                media_type,
                headers={"Retry-After": str(error.retry_after_seconds)},
                extensions={"retryAfter": error.retry_after_seconds},
            )
        request.state.principal = principal
        return None

    # ------------------------------------------------------------------ Strawberry hooks

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        # HTTP: the principal `admit` established. Websockets: none until `connection_init`.
        principal = getattr(request.state, "principal", None)
        workspace_id = principal.workspace_id if principal is not None else NO_WORKSPACE
        return Context(
            request=request,
            response=response,
            settings=self.settings,
            services=self.services,
            principal=principal,
            loaders=Loaders(self.services, workspace_id),
            shared_events=self.shared_events,
        )

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = negotiate(request.headers.get("accept"))
        request.state.sub_response = sub_response
        return sub_response

    def should_render_graphql_ide(self, request: Any) -> bool:
        # Strawberry runs `?query=` as a query even for a browser; a browser gets GraphiQL with the
        # query in its editor (links to GraphiQL with a prepared query work that way).
        if any(name in request.query_params for name in ("extensions", "documentId")):
            return False  # a persisted query (Apollo's GET sends `Accept: */*`), not a person
        if super().should_render_graphql_ide(request):
            return True
        accept = request.headers.get("accept", "")
        return bool(self.graphql_ide) and request.method == "GET" and "text/html" in accept

    async def pick_websocket_subprotocol(self, request: WebSocket) -> str | None:
        """Ours in our order: graphql-transport-ws when the client offers it at all. Strawberry
        takes the client's first choice, and gql offers the legacy protocol first."""
        offered = request.scope.get("subprotocols") or []
        return next((p for p in self.websocket_subprotocols if p in offered), None)

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql_html(request.url.path, "/graphiql/static"))

    def encode_json(self, data: object) -> str:
        # Text, not bytes: Strawberry sends bytes as binary websocket frames, which browser
        # clients (GraphiQL's graphql-ws) cannot read.
        return orjson.dumps(data).decode()

    def decode_json(self, data: str | bytes) -> object:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise json.JSONDecodeError(str(exc), "", 0) from exc

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        if request.method == "POST":
            # The media type before any parameters (RequestAdapter has lower-cased it). Not
            # Strawberry's `parse_content_type`: it builds an `email.message.Message` per call,
            # which was 2-3 % of the CPU of a small query, and only the media type matters here.
            content_type = (request.content_type or "").partition(";")[0].strip()
            if content_type != JSON:
                raise HTTPException(415, "POST requests must have Content-Type: application/json.")
            # Strawberry takes any JSON for an object and fails on `null` or `"x"` (a 500).
            body = await request.get_body()
            if not JSON_CONTAINER.match(body):
                self.parse_json(body)  # malformed JSON is reported as such
                raise HTTPException(400, 'The request body must be a JSON object {"query": ...}.')
        try:
            data = await super().parse_http_body(request)
        except HTTPException as exc:
            if exc.reason == "Batching is not enabled":
                raise HTTPException(
                    400, "Batched requests (a JSON array) are not supported."
                ) from exc
            if request.method == "GET" and exc.reason == "Unable to parse request body as JSON":
                # A GET has no body: the JSON that failed is in `variables` or `extensions`.
                raise HTTPException(
                    400, "The `variables` and `extensions` parameters must be JSON objects."
                ) from exc
            raise
        if not isinstance(data, list):
            accept = request.headers.get("accept")
            if data.protocol != "http" and not prefers_stream(accept):
                data.protocol = "http"  # JSON was preferred: a query gets JSON
            media_type = negotiate(accept)
            await fill_query(data, request, self.services.documents, media_type)
            if not data.query:
                raise HTTPException(400, "No GraphQL query found in the request.")
            if not isinstance(data.operation_name, str | None):
                # Strawberry would answer `Unknown operation named "5"`, which misleads.
                raise HTTPException(400, "`operationName` must be a string or null.")
        return data

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Strawberry's, less subscriptions: over a plain response graphql-core would run one as
        a query, which can only fail (INTERNAL); the caller is told which transports carry it."""
        allowed = OperationType.from_http(request_adapter.method) - {OperationType.SUBSCRIPTION}
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as exc:
            raise HTTPException(400, exc.as_http_error_reason()) from exc
        except InvalidOperationTypeError as exc:
            if exc.operation_type is OperationType.SUBSCRIPTION:
                raise HTTPException(406, SUBSCRIPTION_NEEDS_STREAM) from exc
            raise HTTPException(405, "Only queries are allowed over GET; use POST.") from exc
        except MissingQueryError as exc:
            raise HTTPException(400, "No GraphQL query found in the request.") from exc

    async def create_streaming_response(
        self,
        request: Request | WebSocket,
        stream: Callable[[], AsyncIterator[str]],
        sub_response: Response,
        headers: Mapping[str, str],
    ) -> Response:
        """A stream holds one of its key's subscription slots while it is open."""
        principal = getattr(request.state, "principal", None)
        if not self.streams.acquire(principal):
            return http_error(
                429,
                too_many_streams_message(self.services.subscriptions.limit),
                negotiate(request.headers.get("accept")),
                code=self.streams.code,
            )
        held = self.streams.hold(principal, stream)
        return await super().create_streaming_response(request, held, sub_response, headers)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        if not is_request_error(result):
            return await super().process_result(request, result)
        # The request never reached execution: no "data" key, each error says why.
        errors = result.errors or []
        sub_response: Response = request.state.sub_response
        if sub_response.media_type == GRAPHQL_RESPONSE:
            sub_response.status_code = 400 if all(map(is_expected, errors)) else 500
            if any((error.extensions or {}).get("code") == "FORBIDDEN" for error in errors):
                sub_response.status_code = 403
        return {"errors": [format_request_error(error) for error in errors]}

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        media_type = sub_response.media_type or JSON
        response.headers["content-type"] = f"{media_type}; charset=utf-8"
        return response
