"""Media types: what a request's body is (`Content-Type`) and what its answer may be (`Accept`)."""

from __future__ import annotations

from cross_web import StarletteRequestAdapter

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


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


def _refused(params: list[str]) -> bool:
    """`q=0` (also written `q=0.0`) is how a client says "anything but this" (RFC 9110 §12.4.2)."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value) == 0
            except ValueError:
                return False
    return False
