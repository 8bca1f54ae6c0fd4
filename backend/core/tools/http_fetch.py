"""The HTTP client behind the `http_request` tool: only allowlisted hosts, never private or
loopback addresses (unless allowed), and caps on size, time and redirects.

Written here rather than taken from a library because no maintained library we may use does
all of it: httpx does the HTTP, and this module decides where a request may go. Each hop is
checked before it is sent: the URL's host against the workspace's allowlist, then every
address the name resolves to (a name that resolves to 10.0.0.1 is as private as 10.0.0.1).
The request is then sent to the address that was checked, with the original name in `Host`
and as TLS server name, so a DNS answer that changes between the check and the connection
(DNS rebinding) cannot send it elsewhere. Redirects are followed by hand for the same reason.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
REDIRECTS = {301, 302, 303, 307, 308}
# Headers a caller may not set: they are ours to set for the checked destination.
RESERVED_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}
CREDENTIALS = {"authorization", "cookie", "proxy-authorization"}
SHOWN = ("content-type", "content-length", "location", "retry-after")


class RequestRefused(Exception):
    """The request may not be sent (allowlist, address, scheme); the message says why."""


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_response_bytes: int
    timeout_seconds: float
    max_redirects: int
    allow_private_addresses: bool = False


@dataclass(frozen=True, slots=True)
class HttpResult:
    status: int
    url: str
    headers: dict[str, str]
    body: str
    truncated: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "url": self.url,
            "headers": self.headers,
            "body": self.body,
            "truncated": self.truncated,
        }


def host_allowed(host: str, port: int, allowlist: Sequence[str]) -> bool:
    """Whether `host:port` matches an entry: `name`, `*.name` (subdomains only), either with
    `:port` to allow that port alone; IPv6 entries are bracketed (`[::1]:8080`)."""
    host = host.lower().rstrip(".")
    for entry in allowlist:
        pattern, entry_port = _split_entry(entry)
        if entry_port is not None and entry_port != port:
            continue
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and fnmatch.fnmatchcase(host, pattern):
                return True
        elif host == pattern:
            return True
    return False


def _split_entry(entry: str) -> tuple[str, int | None]:
    entry = entry.lower()
    if entry.startswith("["):
        address, _, rest = entry[1:].partition("]")
        return address, int(rest[1:]) if rest.startswith(":") else None
    name, sep, port = entry.rpartition(":")
    if sep and port.isdigit():
        return name, int(port)
    return entry, None


def is_public(address: IPAddress) -> bool:
    """Reachable on the public internet: not private, loopback, link-local (cloud metadata
    lives there), multicast, reserved or unspecified; IPv4-mapped IPv6 judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise RequestRefused(f"cannot resolve {host}: {error.strerror}") from None
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in found:
            found.append(address)
    if not found:
        raise RequestRefused(f"{host} has no address")
    return found


@dataclass(frozen=True, slots=True)
class _Hop:
    host_header: str
    sni: str | None  # TLS server name: the host name (none for an address)
    connect_url: str  # the URL with the checked address as its host


async def _check(url: str, allowlist: Sequence[str], limits: HttpLimits) -> _Hop:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RequestRefused(f"only http and https URLs are allowed, not {parts.scheme or url!r}")
    if parts.username or parts.password:
        raise RequestRefused("URLs with credentials are not allowed")
    host = (parts.hostname or "").lower()
    if not host:
        raise RequestRefused(f"{url!r} has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RequestRefused(f"{url!r} has an invalid port") from None
    if not host_allowed(host, port, allowlist):
        raise RequestRefused(
            f"{host}:{port} is not on this workspace's HTTP allowlist (setHttpAllowlist)"
        )
    addresses = await resolve(host, port)
    if not limits.allow_private_addresses:
        for address in addresses:
            if not is_public(address):
                raise RequestRefused(
                    f"{host} resolves to {address}, a private, loopback or otherwise "
                    "non-public address"
                )
    address = addresses[0]
    netloc = f"[{address}]" if address.version == 6 else str(address)
    if parts.port:
        netloc += f":{parts.port}"
    connect_url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    is_address = host == str(addresses[0]) or ":" in host
    host_header = f"[{host}]" if ":" in host else host
    if parts.port:
        host_header += f":{parts.port}"
    return _Hop(host_header, None if is_address else host, connect_url)


async def fetch(
    client: httpx.AsyncClient,
    *,
    url: str,
    method: Literal["GET", "POST"],
    allowlist: Sequence[str],
    limits: HttpLimits,
    headers: dict[str, str] | None = None,
    body: str | None = None,
) -> HttpResult:
    """Sends the request within the limits; RequestRefused when it may not be sent,
    TimeoutError past the time cap, httpx.HTTPError for transport failures."""
    sent_headers = dict(headers or {})
    for name in sent_headers:
        if name.lower() in RESERVED_HEADERS:
            raise RequestRefused(f"header {name!r} cannot be set")
    async with asyncio.timeout(limits.timeout_seconds):
        for _ in range(limits.max_redirects + 1):
            hop = await _check(url, allowlist, limits)
            request = client.build_request(
                method,
                hop.connect_url,
                headers={**sent_headers, "Host": hop.host_header},
                content=body.encode("utf-8") if body is not None and method == "POST" else None,
                extensions={"sni_hostname": hop.sni} if hop.sni else None,
            )
            response = await client.send(request, stream=True)
            try:
                location = response.headers.get("location")
                if response.status_code in REDIRECTS and location:
                    if response.status_code == 303 or (
                        response.status_code in (301, 302) and method == "POST"
                    ):
                        method, body = "GET", None
                    target = urljoin(url, location)
                    if urlsplit(target).netloc != urlsplit(url).netloc:
                        # Credentials the caller meant for one host do not follow to another.
                        sent_headers = {
                            k: v for k, v in sent_headers.items() if k.lower() not in CREDENTIALS
                        }
                    url = target
                    continue
                data, truncated = await _read_capped(response, limits.max_response_bytes)
                return HttpResult(
                    status=response.status_code,
                    url=url,
                    headers={k: response.headers[k] for k in SHOWN if k in response.headers},
                    body=data.decode(response.encoding or "utf-8", errors="replace"),
                    truncated=truncated,
                )
            finally:
                await response.aclose()
    raise RequestRefused(f"more than {limits.max_redirects} redirects")


async def _read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        if size + len(chunk) > cap:
            chunks.append(chunk[: cap - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False
