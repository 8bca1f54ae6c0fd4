"""AuthService: workspaces, their API keys, and turning a presented key into a Principal.

Keys look like `cq_ab12cd34_<43 characters>`: a fixed prefix that secret scanners and people
recognise, an 8-character public id that finds the row (and is safe to show and log), and a
256-bit random secret of which only a SHA-256 hash is stored. A slow password hash (bcrypt,
argon2) protects guessable passwords; a 256-bit random secret cannot be guessed, so a fast hash
loses nothing and keeps authentication at microseconds. The comparison is constant-time anyway.

Per-request cost: `authenticate` keeps its answers for `cache_seconds` (2 s by default) in
process memory, so a busy key costs one indexed read every two seconds, not one per request.
Revocation therefore takes effect at once in the process that revoked (its entry is dropped)
and within `cache_seconds` in every other process. `last_used_at` is written at most once a
minute per key and process, and the UPDATE's own condition keeps processes from repeating it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from loguru import logger
from sqlalchemy import Row
from sqlalchemy.exc import DBAPIError

from backend.core.auth import Unauthenticated
from backend.core.errors import Conflict, NotFound
from backend.core.identity import Principal, Role
from backend.repositories.api_key import ApiKeyRepository
from backend.repositories.unit_of_work import UnitOfWork, UnitOfWorkFactory
from backend.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyResponse,
    WorkspaceCreate,
    WorkspaceResponse,
)
from backend.utils.time import utcnow

KEY_PREFIX = "cq_"
PUBLIC_ID_LENGTH = 8
PUBLIC_ID_ALPHABET = string.ascii_lowercase + string.digits
SECRET_BYTES = 32  # 256 bits; token_urlsafe makes 43 characters of them
_SECRET_ALPHABET = frozenset(string.ascii_letters + string.digits + "-_")
_PUBLIC_ALPHABET = frozenset(PUBLIC_ID_ALPHABET)
_PUBLIC_END = len(KEY_PREFIX) + PUBLIC_ID_LENGTH  # where `_<secret>` starts
MIN_SECRET_LENGTH = 40
MAX_TOKEN_LENGTH = 200

TOUCH_INTERVAL_SECONDS = 60.0
# Cached answers, valid and not (unknown or revoked keys): enough for every key a deployment
# has, bounded so that a stream of made-up keys cannot grow it without end.
MAX_CACHED = 10_000

Clock = Callable[[], float]


def make_token() -> tuple[str, str, str]:
    """A new key: (token, public id, secret)."""
    public_id = "".join(secrets.choice(PUBLIC_ID_ALPHABET) for _ in range(PUBLIC_ID_LENGTH))
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return f"{KEY_PREFIX}{public_id}_{secret}", public_id, secret


def parse_token(token: str) -> tuple[str, str] | None:
    """(public id, secret) of a well-formed key, else None. The public id has a fixed length, so
    the split is unambiguous although the secret's alphabet includes `_`."""
    if len(token) > MAX_TOKEN_LENGTH or not token.startswith(KEY_PREFIX):
        return None
    public_id = token[len(KEY_PREFIX) : _PUBLIC_END]
    if token[_PUBLIC_END : _PUBLIC_END + 1] != "_":
        return None
    secret = token[_PUBLIC_END + 1 :]
    if len(public_id) != PUBLIC_ID_LENGTH or not _PUBLIC_ALPHABET.issuperset(public_id):
        return None
    if len(secret) < MIN_SECRET_LENGTH or not _SECRET_ALPHABET.issuperset(secret):
        return None
    return public_id, secret


def public_prefix(token: str | None) -> str | None:
    """The loggable start of a presented key (`cq_ab12cd34`), or None if it is not one of ours.
    Audit lines for failed attempts use it; the rest of the token never reaches a log."""
    if token is None:
        return None
    parsed = parse_token(token)
    return None if parsed is None else KEY_PREFIX + parsed[0]


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _key(row: Row[Any]) -> ApiKeyResponse:
    return ApiKeyResponse.model_construct(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        prefix=KEY_PREFIX + row.public_id,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def _workspace(row: Row[Any]) -> WorkspaceResponse:
    return WorkspaceResponse.model_construct(id=row.id, name=row.name, created_at=row.created_at)


def _keys(uow: UnitOfWork) -> ApiKeyRepository:
    return uow.api_keys


@dataclass(slots=True, frozen=True)
class _Answer:
    """What the database said about one public id, until `expires` (monotonic seconds)."""

    expires: float
    principal: Principal | None  # None: no such key, or revoked
    secret_hash: str
    reason: str  # why `principal` is None, for the audit log


class AuthService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        read_uow: UnitOfWorkFactory | None = None,
        *,
        cache_seconds: float = 2.0,
        touch_interval_seconds: float = TOUCH_INTERVAL_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self._uow = uow
        self._read_uow = read_uow or uow
        self._cache_seconds = cache_seconds
        self._touch_interval = touch_interval_seconds
        self._clock = clock
        self._answers: OrderedDict[str, _Answer] = OrderedDict()
        self._touched: dict[uuid.UUID, float] = {}

    # ================================================================ workspaces

    async def create_workspace(self, data: WorkspaceCreate) -> WorkspaceResponse:
        async with self._uow() as uow:
            if await uow.workspaces.get_by_name(data.name) is not None:
                raise Conflict(f"A workspace named {data.name!r} already exists.", "name")
            row = await uow.workspaces.add(data.name)
        return _workspace(row)

    async def list_workspaces(self) -> list[WorkspaceResponse]:
        async with self._read_uow() as uow:
            rows = await uow.workspaces.list()
        return [_workspace(row) for row in rows]

    async def workspace_by_name(self, name: str) -> WorkspaceResponse:
        async with self._read_uow() as uow:
            row = await uow.workspaces.get_by_name(name)
        if row is None:
            raise NotFound("Workspace", name)
        return _workspace(row)

    # ================================================================ keys

    async def create_key(self, workspace_id: uuid.UUID, data: ApiKeyCreate) -> ApiKeyCreated:
        """A new key; the token in the answer is the only copy there will ever be."""
        for attempt in range(3):
            token, public_id, secret = make_token()
            try:
                async with self._uow() as uow:
                    if await uow.workspaces.get(workspace_id) is None:
                        raise NotFound("Workspace", workspace_id)
                    keys = _keys(uow)
                    if await keys.public_id_taken(public_id):
                        continue  # one in 2.8e12; draw again
                    stored = await keys.add(
                        workspace_id,
                        {
                            "name": data.name,
                            "role": data.role.value,
                            "public_id": public_id,
                            "secret_hash": hash_secret(secret),
                        },
                    )
            except Conflict:
                if attempt == 2:
                    raise
                continue  # a concurrent creation drew the same public id first
            # A made-up key with this public id may have been refused (and cached) before.
            self._answers.pop(public_id, None)
            # `_key` copies the public columns only: the hash that `add` returned goes no further.
            return ApiKeyCreated.model_construct(api_key=_key(stored), token=token)
        raise Conflict("Could not draw an unused key id; try again.")

    async def list_keys(self, workspace_id: uuid.UUID) -> list[ApiKeyResponse]:
        """Every key of the workspace, revoked ones included (they are its access history)."""
        async with self._read_uow() as uow:
            rows = await _keys(uow).of_workspace(workspace_id)
        return [_key(row) for row in rows]

    async def get_key(self, workspace_id: uuid.UUID, reference: str) -> ApiKeyResponse:
        """A key of this workspace by id, by prefix (`cq_ab12cd34`) or by public id alone;
        people copy whichever `crewql apikey list` showed them."""
        async with self._read_uow() as uow:
            keys = _keys(uow)
            try:
                row = await keys.find(workspace_id, uuid.UUID(reference))
            except ValueError:
                public_id = reference.removeprefix(KEY_PREFIX)
                row = await keys.find_by_public_id(workspace_id, public_id)
        if row is None:
            raise NotFound("ApiKey", reference)
        return _key(row)

    async def revoke_key(self, workspace_id: uuid.UUID, key_id: uuid.UUID) -> ApiKeyResponse:
        """Revokes a key of this workspace. A key of another workspace answers NotFound, exactly
        like one that does not exist. Revoking twice keeps the first time."""
        async with self._uow() as uow:
            row = await _keys(uow).revoke(workspace_id, key_id, utcnow())
        if row is None:
            raise NotFound("ApiKey", key_id)
        self._answers.pop(row.public_id, None)
        self._touched.pop(row.id, None)
        return _key(row)

    # ================================================================ authentication

    async def authenticate(self, token: str | None) -> Principal:
        """The principal a key stands for; Unauthenticated when it is missing, malformed,
        unknown, revoked, or its secret does not match."""
        if not token:
            raise Unauthenticated("missing")
        parsed = parse_token(token)
        if parsed is None:
            raise Unauthenticated("malformed")
        public_id, secret = parsed
        prefix = KEY_PREFIX + public_id
        answer = await self._answer(public_id)
        # Compared even when the key is unknown (against a hash of nothing), so that unknown
        # and wrong-secret keys take the same path.
        matches = hmac.compare_digest(hash_secret(secret), answer.secret_hash)
        if answer.principal is None:
            raise Unauthenticated(answer.reason, prefix)
        if not matches:
            raise Unauthenticated("wrong_secret", prefix)
        await self._touch(answer.principal)
        return answer.principal

    async def is_active(self, principal: Principal) -> bool:
        """Whether the principal's key still holds (not revoked, workspace not deleted), as
        fresh as the cache: what a long subscription checks every few seconds."""
        if principal.key_id is None:
            return True  # authentication is off
        answer = await self._answer(principal.key_prefix.removeprefix(KEY_PREFIX))
        return answer.principal is not None and answer.principal.key_id == principal.key_id

    def forget(self, public_id: str) -> None:
        """Drops a cached answer (tests, and a revocation learnt of from elsewhere)."""
        self._answers.pop(public_id, None)

    async def _answer(self, public_id: str) -> _Answer:
        now = self._clock()
        answer = self._answers.get(public_id)
        if answer is not None and answer.expires > now:
            return answer
        answer = await self._load(public_id, now)
        if self._cache_seconds > 0:
            self._answers[public_id] = answer
            self._answers.move_to_end(public_id)
            while len(self._answers) > MAX_CACHED:
                self._answers.popitem(last=False)
        return answer

    async def _load(self, public_id: str, now: float) -> _Answer:
        async with self._read_uow() as uow:
            row = await _keys(uow).by_public_id(public_id)
        expires = now + self._cache_seconds
        if row is None:
            return _Answer(expires, None, _NO_HASH, "unknown")
        if row.revoked_at is not None:
            return _Answer(expires, None, row.secret_hash, "revoked")
        principal = Principal(
            workspace_id=row.workspace_id,
            key_id=row.id,
            key_prefix=KEY_PREFIX + row.public_id,
            role=Role(row.role),
        )
        return _Answer(expires, principal, row.secret_hash, "")

    async def _touch(self, principal: Principal) -> None:
        """Records the key's use, at most once per `touch_interval` per key in this process.

        Inline rather than in a background task: it is one indexed UPDATE a minute per key, and
        a task would outlive requests and need tracking at shutdown. A failure (SQLite busy, a
        lost connection) costs a stale `last_used_at`, never the request.
        """
        assert principal.key_id is not None
        now = self._clock()
        last = self._touched.get(principal.key_id)
        if last is not None and now - last < self._touch_interval:
            return
        if len(self._touched) >= MAX_CACHED:
            # Keys idle for a whole interval would be written anyway on their next use.
            self._touched = {
                k: t for k, t in self._touched.items() if now - t < self._touch_interval
            }
        self._touched[principal.key_id] = now  # before the await: concurrent requests skip it
        wall = utcnow()
        try:
            async with self._uow() as uow:
                await _keys(uow).touch(
                    principal.key_id, wall, wall - timedelta(seconds=self._touch_interval)
                )
        except (DBAPIError, Conflict) as error:
            logger.warning("could not record the use of key {}: {!r}", principal.key_prefix, error)


# What an unknown key's secret is compared against: no secret hashes to it.
_NO_HASH = "0" * 64
