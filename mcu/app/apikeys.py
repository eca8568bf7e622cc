"""The API keys that sign the platform's access tokens, as configured: ``--api-key ID=SECRET``
(repeatable), ``MCU_API_KEYS`` (comma-separated ``ID=SECRET`` pairs) or TOML ``[[api_keys]]``
tables with ``id`` and ``secret`` or ``public_key_file`` (an ES256 PEM public key).

A secret is never repeated in an error: a malformed pair is named by its position.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator, model_validator

from mcu.crypto.accesstokens import MIN_SECRET_BYTES, ApiKey, load_public_key

__all__ = ["KEY_ID", "ApiKeyConfig", "api_keys", "parse_key_pairs", "unique_ids"]

KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"What a key id may look like (it travels in every token's ``iss``)."


class ApiKeyConfig(BaseModel):
    """One API key: ``id`` and either ``secret`` (HS256) or ``public_key_file`` (ES256)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    "The key id, which tokens name in ``iss``."
    secret: SecretStr | None = None
    "The shared HS256 secret, at least 32 bytes."
    public_key_file: Path | None = None
    "A PEM file with the platform's ES256 (P-256) public key."

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not KEY_ID.fullmatch(value):
            raise ValueError(
                f"id must be 1-64 characters from A-Z, a-z, 0-9, '_', '.' and '-', got {value!r}"
            )
        return value

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"secret must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> ApiKeyConfig:
        if (self.secret is None) == (self.public_key_file is None):
            raise ValueError(f"API key {self.id!r} needs either secret or public_key_file")
        if self.public_key_file is not None:
            _read_public_key(self.id, self.public_key_file)  # a bad file fails at start-up
        return self


def parse_key_pairs(pairs: Iterable[str], source: str) -> list[dict[str, str]]:
    """``ID=SECRET`` pairs as ``[[api_keys]]`` tables; ``ValueError`` names a bad pair by its
    position in ``source``, never by its text (it holds a secret)."""
    keys: list[dict[str, str]] = []
    for number, pair in enumerate(pairs, start=1):
        key_id, equals, secret = pair.strip().partition("=")
        if not equals or not key_id.strip() or not secret:
            raise ValueError(f"{source}: API key {number} must be ID=SECRET")
        keys.append({"id": key_id.strip(), "secret": secret})
    return keys


def api_keys(configured: Sequence[ApiKeyConfig]) -> list[ApiKey]:
    """The configured keys, public key files read; ``ValueError`` says which one is unusable.

    Reads files: call at start-up, before the event loop serves requests.
    """
    keys: list[ApiKey] = []
    for entry in configured:
        if entry.secret is not None:
            keys.append(ApiKey(entry.id, secret=entry.secret.get_secret_value().encode()))
            continue
        assert entry.public_key_file is not None
        keys.append(ApiKey(entry.id, public_key=_read_public_key(entry.id, entry.public_key_file)))
    return keys


def unique_ids(configured: Sequence[ApiKeyConfig]) -> None:
    """``ValueError`` when two keys share an id (a token's ``iss`` must select one key)."""
    ids = [entry.id for entry in configured]
    duplicates = sorted({key_id for key_id in ids if ids.count(key_id) > 1})
    if duplicates:
        raise ValueError(f"API key ids must be unique; {', '.join(duplicates)} repeats")


def _read_public_key(key_id: str, path: Path) -> ec.EllipticCurvePublicKey:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"API key {key_id!r}: cannot read {path}: {exc.strerror}") from None
    try:
        return load_public_key(pem)
    except ValueError as exc:
        raise ValueError(f"API key {key_id!r}: {path}: {exc}") from None
