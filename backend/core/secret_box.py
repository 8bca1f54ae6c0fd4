"""Encryption of workspace secrets at rest, with keys that can rotate.

`cryptography`'s MultiFernet does the work: it encrypts with the first key and decrypts with
any, and `rotate` re-encrypts a token under the first key. Fernet authenticates what it
encrypts (AES-128-CBC with HMAC-SHA256), so a changed ciphertext fails to decrypt instead of
yielding garbage. A Fernet token also carries its creation time, which we do not use.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from backend.core.errors import DomainError


class SecretsKeyMissing(DomainError):
    """Secrets cannot be stored or read: CREWQL_SECRETS_KEY is not set."""

    code = "SECRETS_KEY_MISSING"

    def __init__(self) -> None:
        super().__init__(
            "Secrets need an encryption key: set CREWQL_SECRETS_KEY "
            "(make one with `crewql secrets generate-key`)."
        )


class SecretUnreadable(DomainError):
    """A stored value does not decrypt with any configured key (a key was dropped too early)."""

    code = "SECRET_UNREADABLE"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Secret {name!r} cannot be decrypted with the configured CREWQL_SECRETS_KEY; "
            "restore the key it was stored with, or set the secret again."
        )
        self.name = name


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    """Encrypts and decrypts secret values with the deployment's keys (newest first)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._fernet = MultiFernet([Fernet(k) for k in keys]) if keys else None

    @property
    def configured(self) -> bool:
        return self._fernet is not None

    def _require(self) -> MultiFernet:
        if self._fernet is None:
            raise SecretsKeyMissing()
        return self._fernet

    def encrypt(self, value: str) -> str:
        return self._require().encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, name: str, ciphertext: str) -> str:
        try:
            return self._require().decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SecretUnreadable(name) from None

    def rotate(self, name: str, ciphertext: str) -> str:
        """The same value, encrypted under the first key."""
        try:
            return self._require().rotate(ciphertext.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise SecretUnreadable(name) from None
