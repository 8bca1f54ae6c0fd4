"""Media types: what a request's body is (`Content-Type`) and what its answer may be (`Accept`)."""

from __future__ import annotations

from cross_web import StarletteRequestAdapter

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
JSON_TYPES = (JSON, GRAPHQL_RESPONSE, "application/graphql+json")
STREAMS = ("multipart/mixed", "text/event-stream")


class RequestAdapter(StarletteRequestAdapter):
    """Media types are case-insensitive (RFC 9110 §8.3.1); Strawberry compares them verbatim and
    would turn `Application/JSON` away."""

    @property
    def content_type(self) -> str | None:
        value = super().content_type
        if value is None:
            return None
        media, separator, parameters = value.partition(";")
        return media.strip().lower() + separator + parameters


def negotiate(accept: str | None) -> str:
    """The response media type for an Accept header (spec §"Accept"): ours first, JSON if absent."""
    if not accept:
        return JSON
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        if media.lower() == GRAPHQL_RESPONSE and not _refused(params):
            return GRAPHQL_RESPONSE
    return JSON


def prefers_stream(accept: str | None) -> bool:
    """Whether a client that accepts a streamed answer (multipart or event stream) would rather
    have it than JSON: a higher q, or the same q and listed first. urql lists JSON first for a
    query and a stream first for a subscription; Apollo and gql send a stream type for
    subscriptions only. Strawberry streams whenever a stream type appears at all."""
    best: dict[str, tuple[float, int]] = {}
    for index, part in enumerate((accept or "").split(",")):
        media, *params = (piece.strip() for piece in part.split(";"))
        media = media.lower()
        kind = "stream" if media in STREAMS else "json" if media in JSON_TYPES else None
        if kind is not None:
            rank = (_quality(params), -index)
            best[kind] = max(best.get(kind, rank), rank)
    stream = best.get("stream")
    return stream is not None and stream[0] > 0 and stream > best.get("json", (0.0, 0))


def _refused(params: list[str]) -> bool:
    """`q=0` (also written `q=0.0`) is how a client says "anything but this" (RFC 9110 §12.4.2)."""
    return _quality(params) == 0


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 1.0
    return 1.0
