"""SecretService: a workspace's secrets, stored encrypted, read back only inside the server.

Values go in through `set` and come out only through `value`/`values`, which the runner calls
to reach a model provider or an MCP server; nothing the API returns, logs, traces or writes to
an event carries one (`SecretResponse` has no value field, `SecretSet.value` is a SecretStr).
Who set a value is recorded by the caller's public key prefix, never the key.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy.exc import DBAPIError

from backend.config.settings import SettingsError
from backend.core.errors import Conflict, DomainError, InUse, NotFound
from backend.core.secret_box import SecretBox, SecretUnreadable
from backend.repositories.unit_of_work import UnitOfWorkFactory
from backend.schemas.secret import SecretResponse, SecretSet

# The secret each provider's key is read from unless the agent names another.
PROVIDER_SECRETS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


class SecretMissing(DomainError):
    """A secret a run needs is not set in the workspace."""

    code = "SECRET_MISSING"

    def __init__(self, name: str) -> None:
        super().__init__(f"Secret {name} is not set in this workspace: set it with setSecret.")
        self.name = name


class SecretsKeyRequired(SettingsError):
    """Start-up refusal: stored secrets and no key (or a key that cannot read them)."""


def provider_secret_name(llm: str, explicit: str | None = None) -> str | None:
    """The secret an agent's provider key comes from: the agent's own choice, else the
    provider's default; None when the provider needs no key (`simulated`)."""
    if explicit:
        return explicit
    return PROVIDER_SECRETS.get(llm.strip().partition("/")[0])


def _secret(row: Row[Any]) -> SecretResponse:
    return SecretResponse.model_construct(
        name=row.name, set_by=row.set_by, created_at=row.created_at, updated_at=row.updated_at
    )


class SecretService:
    def __init__(
        self, uow: UnitOfWorkFactory, read_uow: UnitOfWorkFactory | None, box: SecretBox
    ) -> None:
        self._uow = uow
        self._read_uow = read_uow or uow
        self._box = box

    async def list(self, workspace_id: uuid.UUID) -> list[SecretResponse]:
        async with self._read_uow() as uow:
            rows = await uow.secrets.of_workspace(workspace_id)
        return [_secret(row) for row in rows]

    async def set(self, workspace_id: uuid.UUID, data: SecretSet, set_by: str) -> SecretResponse:
        """Stores the value (replacing one of the same name), encrypted under the first key."""
        ciphertext = self._box.encrypt(data.value.get_secret_value())
        for attempt in range(2):
            try:
                async with self._uow() as uow:
                    secrets = uow.secrets
                    row = await secrets.replace_value(workspace_id, data.name, ciphertext, set_by)
                    if row is None:
                        row = await secrets.insert_value(
                            workspace_id, data.name, ciphertext, set_by
                        )
                return _secret(row)
            except Conflict:
                if attempt == 1:
                    raise
                # A concurrent set inserted the name first: the second try replaces it.
        raise AssertionError("unreachable")

    async def delete(self, workspace_id: uuid.UUID, name: str) -> None:
        """Deletes a secret no MCP server and no agent names explicitly."""
        async with self._uow() as uow:
            users = await uow.secrets.users_of(workspace_id, name)
            if users:
                raise InUse("Secret", name, users)
            if not await uow.secrets.delete_named(workspace_id, name):
                raise NotFound("Secret", name)

    async def value(self, workspace_id: uuid.UUID, name: str) -> str:
        return (await self.values(workspace_id, [name]))[name]

    async def values(self, workspace_id: uuid.UUID, names: Sequence[str]) -> dict[str, str]:
        """The values of these secrets; SecretMissing names the first one not set."""
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return {}
        async with self._read_uow() as uow:
            stored = await uow.secrets.ciphertexts(workspace_id, wanted)
        for name in wanted:
            if name not in stored:
                raise SecretMissing(name)
        return {name: self._box.decrypt(name, stored[name]) for name in wanted}

    async def check_key(self) -> None:
        """Refuses to start (SecretsKeyRequired, one line) when secrets are stored and the key is
        missing or cannot decrypt them; one stored value is tried, not all of them."""
        count = await self.count_all()
        if not count:
            return
        if not self._box.configured:
            raise SecretsKeyRequired(
                f"{count} workspace secret(s) are stored but CREWQL_SECRETS_KEY is not set: "
                "set it to the key they were encrypted with"
            )
        async with self._read_uow() as uow:
            sample = await uow.secrets.ciphertext_batch(None, batch=1)
        for row in sample:
            try:
                self._box.decrypt(row.name, row.ciphertext)
            except SecretUnreadable:
                raise SecretsKeyRequired(
                    "CREWQL_SECRETS_KEY cannot decrypt the stored secrets: list the key they "
                    "were encrypted with (keys are comma-separated, newest first)"
                ) from None

    async def count_all(self) -> int:
        """Secrets in every workspace; 0 when the table does not exist yet (before migrating)."""
        try:
            async with self._read_uow() as uow:
                return await uow.secrets.count_all()
        except DBAPIError:
            return 0

    async def rotate_all(self) -> int:
        """Re-encrypts every secret under the first key; returns how many. One transaction per
        batch: a rotation interrupted half-way is finished by running it again, since values
        under an older key still decrypt while that key is listed."""
        rotated = 0
        after: uuid.UUID | None = None
        while True:
            async with self._uow() as uow:
                rows = await uow.secrets.ciphertext_batch(after)
                for row in rows:
                    await uow.secrets.set_ciphertext(
                        row.id, self._box.rotate(row.name, row.ciphertext)
                    )
            if not rows:
                return rotated
            rotated += len(rows)
            after = rows[-1].id
