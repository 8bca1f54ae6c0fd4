"""Keys, roles and authentication without a database: token format, role rules, the cache,
revocation, `last_used_at` throttling, audit lines and the loopback rule for auth-off.

AuthService runs here against an in-memory stand-in for its repository, on a clock the test
moves, so what is cached and what is read is counted exactly. tests/integration/test_api_keys.py
runs the same service on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace, TracebackType
from typing import Any

import pytest
from loguru import logger
from sqlalchemy.exc import OperationalError

from backend.config.settings import SettingsError, is_loopback, load_settings
from backend.core import audit as audit_module
from backend.core.auth import RateLimited, Unauthenticated, bearer_token, required_role
from backend.core.identity import LOCAL_PRINCIPAL, Forbidden, Principal, Role
from backend.models import DEFAULT_WORKSPACE_ID
from backend.services import auth_service
from backend.services.auth_service import (
    AuthService,
    hash_secret,
    make_token,
    parse_token,
    public_prefix,
)
from backend.utils.time import utcnow

# ============================================================================ token format


def test_a_key_is_prefix_public_id_and_secret() -> None:
    token, public_id, secret = make_token()
    assert token == f"cq_{public_id}_{secret}"
    assert len(public_id) == 8
    assert set(public_id) <= set("abcdefghijklmnopqrstuvwxyz0123456789")
    assert len(secret) >= 43  # 32 random bytes, url-safe base64
    assert parse_token(token) == (public_id, secret)
    assert public_prefix(token) == f"cq_{public_id}"


def test_keys_differ() -> None:
    tokens = {make_token()[0] for _ in range(200)}
    assert len(tokens) == 200


def test_a_secret_containing_underscores_still_parses() -> None:
    secret = "_" * 10 + "a" * 33
    assert parse_token(f"cq_abcd1234_{secret}") == ("abcd1234", secret)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abcd1234_" + "a" * 43,  # no prefix
        "CQ_abcd1234_" + "a" * 43,  # prefix is case-sensitive
        "cq_abcd123_" + "a" * 43,  # public id too short
        "cq_ABCD1234_" + "a" * 43,  # public id upper case
        "cq_abcd1234" + "a" * 43,  # no separator
        "cq_abcd1234_" + "a" * 20,  # secret too short
        "cq_abcd1234_" + "a" * 42 + "=",  # not url-safe base64
        "cq_abcd1234_" + "a" * 42 + " ",
        "cq_abcd1234_" + "a" * 300,  # absurdly long
    ],
)
def test_malformed_keys_do_not_parse(token: str) -> None:
    assert parse_token(token) is None
    assert public_prefix(token) is None


def test_the_hash_is_sha256_hex_of_the_secret() -> None:
    digest = hash_secret("s" * 43)
    assert len(digest) == 64
    assert digest == hash_secret("s" * 43)
    assert digest != hash_secret("s" * 42 + "t")


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("Bearer cq_x", "cq_x"),
        ("bearer   cq_x  ", "cq_x"),
        ("BEARER cq_x", "cq_x"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("cq_x", None),
        (None, None),
        (42, None),
        ({"authorization": "Bearer cq_x"}, None),
    ],
)
def test_bearer_token(value: object, token: str | None) -> None:
    assert bearer_token(value) == token


# ============================================================================ roles


def test_roles_are_ordered_by_power_not_alphabet() -> None:
    assert Role.VIEWER < Role.EDITOR < Role.ADMIN
    assert Role.ADMIN >= Role.ADMIN
    assert max(Role) is Role.ADMIN
    assert sorted([Role.ADMIN, Role.VIEWER, Role.EDITOR]) == [Role.VIEWER, Role.EDITOR, Role.ADMIN]


@pytest.mark.parametrize(
    ("kind", "fields", "role"),
    [
        ("query", ["crews", "execution"], Role.VIEWER),
        ("query", ["__schema"], Role.VIEWER),
        ("subscription", ["executionEvents"], Role.VIEWER),
        ("subscription", ["executionUpdates"], Role.VIEWER),
        ("mutation", ["createCrew"], Role.EDITOR),
        ("mutation", ["createExecution", "cancelExecution"], Role.EDITOR),
        ("mutation", ["deleteAgent"], Role.EDITOR),
        ("query", ["apiKeys"], Role.ADMIN),
        ("query", ["crews", "apiKeys"], Role.ADMIN),
        ("mutation", ["createApiKey"], Role.ADMIN),
        ("mutation", ["createCrew", "revokeApiKey"], Role.ADMIN),
    ],
)
def test_required_role(kind: Any, fields: list[str], role: Role) -> None:
    assert required_role(kind, fields) is role


def test_a_role_below_the_required_one_is_forbidden() -> None:
    viewer = Principal(DEFAULT_WORKSPACE_ID, uuid.uuid4(), "cq_abcd1234", Role.VIEWER)
    viewer.require(Role.VIEWER)
    with pytest.raises(Forbidden) as info:
        viewer.require(Role.EDITOR, "createCrew")
    assert info.value.code == "FORBIDDEN"
    assert "editor" in info.value.message
    assert "createCrew" in info.value.message
    LOCAL_PRINCIPAL.require(Role.ADMIN)  # authentication off: admin of the default workspace
    assert LOCAL_PRINCIPAL.workspace_id == DEFAULT_WORKSPACE_ID


def test_unauthenticated_says_the_same_whatever_the_reason() -> None:
    messages = {Unauthenticated(reason).message for reason in ("unknown", "revoked", "missing")}
    assert len(messages) == 1
    assert Unauthenticated("revoked").code == "UNAUTHENTICATED"


@pytest.mark.parametrize(("after", "header"), [(0.01, 1), (1.0, 1), (1.2, 2), (30.0, 30)])
def test_rate_limited_rounds_retry_after_up(after: float, header: int) -> None:
    error = RateLimited(after)
    assert error.code == "RATE_LIMITED"
    assert error.retry_after_seconds == header
    assert str(header) in error.message


# ============================================================================ the service


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeKeys:
    """ApiKeyRepository's authentication half, in memory, counting what the service asks."""

    rows: dict[str, SimpleNamespace] = field(default_factory=dict)
    loads: int = 0
    touches: list[uuid.UUID] = field(default_factory=list)
    fail_touch: bool = False

    def add(self, role: Role = Role.EDITOR, workspace_id: uuid.UUID = DEFAULT_WORKSPACE_ID) -> str:
        token, public_id, secret = make_token()
        self.rows[public_id] = SimpleNamespace(
            id=uuid.uuid4(),
            workspace_id=workspace_id,
            role=role.value,
            public_id=public_id,
            secret_hash=hash_secret(secret),
            revoked_at=None,
            name="k",
            created_at=utcnow(),
            last_used_at=None,
        )
        return token

    async def by_public_id(self, public_id: str) -> SimpleNamespace | None:
        self.loads += 1
        return self.rows.get(public_id)

    async def touch(self, key_id: uuid.UUID, now: datetime, not_since: datetime) -> None:
        if self.fail_touch:
            raise OperationalError("UPDATE api_keys", {}, Exception("database is locked"))
        self.touches.append(key_id)

    async def revoke(
        self, workspace_id: uuid.UUID, key_id: uuid.UUID, now: datetime
    ) -> SimpleNamespace | None:
        for row in self.rows.values():
            if row.id == key_id and row.workspace_id == workspace_id:
                row.revoked_at = row.revoked_at or now
                return row
        return None


class FakeUnitOfWork:
    def __init__(self, keys: FakeKeys) -> None:
        self.api_keys = keys

    async def __aenter__(self) -> FakeUnitOfWork:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> FakeKeys:
    fake = FakeKeys()
    monkeypatch.setattr(auth_service, "_keys", lambda uow: uow.api_keys)
    return fake


@pytest.fixture
def clock() -> Clock:
    return Clock()


def service(keys: FakeKeys, clock: Clock, **options: Any) -> AuthService:
    return AuthService(lambda: FakeUnitOfWork(keys), clock=clock, **options)  # type: ignore[arg-type, return-value]


async def test_authenticate_gives_the_keys_principal(keys: FakeKeys, clock: Clock) -> None:
    token = keys.add(Role.ADMIN)
    principal = await service(keys, clock).authenticate(token)
    row = next(iter(keys.rows.values()))
    assert principal == Principal(DEFAULT_WORKSPACE_ID, row.id, f"cq_{row.public_id}", Role.ADMIN)


async def test_answers_are_cached_for_cache_seconds(keys: FakeKeys, clock: Clock) -> None:
    token = keys.add()
    auth = service(keys, clock, cache_seconds=2.0)
    for _ in range(50):
        await auth.authenticate(token)
    assert keys.loads == 1
    clock.now += 1.9
    await auth.authenticate(token)
    assert keys.loads == 1
    clock.now += 0.2
    await auth.authenticate(token)
    assert keys.loads == 2


async def test_no_cache_reads_every_time(keys: FakeKeys, clock: Clock) -> None:
    token = keys.add()
    auth = service(keys, clock, cache_seconds=0)
    for _ in range(3):
        await auth.authenticate(token)
    assert keys.loads == 3


@pytest.mark.parametrize(
    ("token", "reason"), [(None, "missing"), ("", "missing"), ("x", "malformed")]
)
async def test_missing_and_malformed_keys_never_reach_the_database(
    keys: FakeKeys, clock: Clock, token: str | None, reason: str
) -> None:
    with pytest.raises(Unauthenticated) as info:
        await service(keys, clock).authenticate(token)
    assert info.value.reason == reason
    assert keys.loads == 0


async def test_unknown_keys_are_refused_and_cached(keys: FakeKeys, clock: Clock) -> None:
    auth = service(keys, clock)
    token = make_token()[0]
    for _ in range(5):
        with pytest.raises(Unauthenticated) as info:
            await auth.authenticate(token)
        assert info.value.reason == "unknown"
        assert info.value.key_prefix == public_prefix(token)
    assert keys.loads == 1


async def test_a_wrong_secret_is_refused(keys: FakeKeys, clock: Clock) -> None:
    token = keys.add()
    forged = token[:-5] + ("aaaaa" if not token.endswith("aaaaa") else "bbbbb")
    auth = service(keys, clock)
    await auth.authenticate(token)
    with pytest.raises(Unauthenticated) as info:
        await auth.authenticate(forged)  # answered from the cache: the hash is compared there too
    assert info.value.reason == "wrong_secret"


async def test_revocation_takes_effect_on_the_next_request_here(
    keys: FakeKeys, clock: Clock
) -> None:
    token = keys.add()
    auth = service(keys, clock, cache_seconds=2.0)
    principal = await auth.authenticate(token)
    assert principal.key_id is not None
    await auth.revoke_key(DEFAULT_WORKSPACE_ID, principal.key_id)
    with pytest.raises(Unauthenticated) as info:
        await auth.authenticate(token)
    assert info.value.reason == "revoked"
    assert not await auth.is_active(principal)


async def test_other_processes_learn_of_a_revocation_within_cache_seconds(
    keys: FakeKeys, clock: Clock
) -> None:
    token = keys.add()
    here = service(keys, clock, cache_seconds=2.0)
    elsewhere = service(keys, clock, cache_seconds=2.0)
    principal = await elsewhere.authenticate(token)
    assert principal.key_id is not None
    await here.revoke_key(DEFAULT_WORKSPACE_ID, principal.key_id)
    await elsewhere.authenticate(token)  # still cached over there
    assert await elsewhere.is_active(principal)
    clock.now += 2.01
    assert not await elsewhere.is_active(principal)
    with pytest.raises(Unauthenticated):
        await elsewhere.authenticate(token)


async def test_revoking_a_key_of_another_workspace_is_not_found(
    keys: FakeKeys, clock: Clock
) -> None:
    from backend.core.errors import NotFound

    token = keys.add()
    auth = service(keys, clock)
    principal = await auth.authenticate(token)
    assert principal.key_id is not None
    with pytest.raises(NotFound):
        await auth.revoke_key(uuid.uuid4(), principal.key_id)
    await auth.authenticate(token)


async def test_last_use_is_written_at_most_once_a_minute(keys: FakeKeys, clock: Clock) -> None:
    token = keys.add()
    auth = service(keys, clock, cache_seconds=2.0)
    for _ in range(30):  # a minute of requests, two a second
        await auth.authenticate(token)
        clock.now += 1.99
    assert len(keys.touches) == 1
    clock.now += 1.0
    await auth.authenticate(token)
    assert len(keys.touches) == 2


async def test_a_failed_last_use_write_does_not_fail_the_request(
    keys: FakeKeys, clock: Clock
) -> None:
    token = keys.add()
    keys.fail_touch = True
    principal = await service(keys, clock).authenticate(token)
    assert principal.role is Role.EDITOR


async def test_the_cache_is_bounded(
    keys: FakeKeys, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_service, "MAX_CACHED", 10)
    auth = service(keys, clock)
    for _ in range(50):
        with pytest.raises(Unauthenticated):
            await auth.authenticate(make_token()[0])
    assert len(auth._answers) == 10


async def test_auth_off_principal_is_always_active(keys: FakeKeys, clock: Clock) -> None:
    assert await service(keys, clock).is_active(LOCAL_PRINCIPAL)
    assert keys.loads == 0


# ============================================================================ audit


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), format="{message}|{extra}")
    try:
        yield lines
    finally:
        logger.remove(sink)


def test_an_audit_line_names_workspace_key_operation_and_outcome(log_lines: list[str]) -> None:
    token = make_token()[0]
    principal = Principal(DEFAULT_WORKSPACE_ID, uuid.uuid4(), str(public_prefix(token)), Role.ADMIN)
    audit_module.audit(operation="createApiKey", outcome="ok", principal=principal)
    (line,) = log_lines
    assert f"workspace={DEFAULT_WORKSPACE_ID}" in line
    assert f"key={public_prefix(token)} " in line
    assert "operation=createApiKey outcome=ok" in line
    assert "'audit': True" in line
    assert token not in line


def test_audit_lines_cannot_be_forged_through_names(log_lines: list[str]) -> None:
    audit_module.audit(
        operation="x\naudit workspace=evil outcome=ok", outcome="unauthenticated", key_prefix=None
    )
    (line,) = log_lines
    assert "\n" not in line.split("|")[0]
    assert "key=- " in line


# ============================================================================ settings


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_auth_off_is_refused_on_a_public_address_in_one_line() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(auth_enabled=False, host="0.0.0.0", log_to_files=False)
    message = str(info.value)
    assert "\n" not in message
    assert "CREWQL_AUTH_ENABLED" in message
    assert "CREWQL_HOST" in message
    assert "0.0.0.0" in message


def test_auth_off_on_loopback_and_auth_on_anywhere_are_accepted() -> None:
    assert not load_settings(auth_enabled=False, host="127.0.0.1").auth_enabled
    assert load_settings(host="0.0.0.0").auth_enabled  # on by default


def test_auth_cache_is_at_most_two_seconds() -> None:
    with pytest.raises(SettingsError, match="CREWQL_AUTH_CACHE_SECONDS"):
        load_settings(auth_cache_seconds=10)
