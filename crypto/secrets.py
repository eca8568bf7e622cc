"""Server secrets kept on disk: created once with owner-only permissions, then reused.

Synchronous file I/O: call these at start-up, before the event loop serves requests.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["SecretFileError", "load_or_create_admin_token", "load_or_create_secret"]

SECRETS_DIRNAME = "secrets"
ADMIN_TOKEN_NAME = "admin-token"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class SecretFileError(Exception):
    """A secret file exists but cannot be used (unreadable, empty or the wrong size)."""


def _secrets_dir(data_dir: Path) -> Path:
    directory = data_dir / SECRETS_DIRNAME
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkdir's mode is filtered by the umask and ignored for an existing directory.
    os.chmod(directory, 0o700)
    return directory


def _load_or_create(data_dir: Path, name: str, make: Callable[[], bytes]) -> bytes:
    if not _NAME.fullmatch(name):
        raise ValueError(f"secret name must be a plain file name, got {name!r}")
    directory = _secrets_dir(data_dir)
    path = directory / name
    if not path.exists():
        # Write a private temporary file, then link it into place: the link fails if another
        # process won the race, and nobody ever reads a half-written secret.
        temporary = directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(make())
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass
        finally:
            temporary.unlink(missing_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SecretFileError(f"{path}: cannot read secret: {exc.strerror}") from None


def load_or_create_secret(data_dir: Path, name: str, nbytes: int = 32) -> bytes:
    """The ``nbytes`` random bytes in ``data_dir/secrets/<name>``, created (mode 0600, directory
    0700) from ``os.urandom`` on first use; raises ``SecretFileError`` if the file is the wrong
    size."""
    if nbytes < 16:
        raise ValueError(f"a secret needs at least 16 bytes, got {nbytes}")
    value = _load_or_create(data_dir, name, lambda: os.urandom(nbytes))
    if len(value) != nbytes:
        path = data_dir / SECRETS_DIRNAME / name
        raise SecretFileError(f"{path}: expected {nbytes} bytes, found {len(value)}")
    return value


def load_or_create_admin_token(data_dir: Path) -> str:
    """The admin API bearer token in ``data_dir/secrets/admin-token`` (URL-safe text, mode 0600),
    generated on first use."""
    value = _load_or_create(
        data_dir, ADMIN_TOKEN_NAME, lambda: secrets.token_urlsafe(32).encode("ascii")
    )
    try:
        token = value.decode("ascii").strip()
    except UnicodeDecodeError:
        token = ""
    if len(token) < 16:
        path = data_dir / SECRETS_DIRNAME / ADMIN_TOKEN_NAME
        raise SecretFileError(f"{path}: admin token must be at least 16 ASCII characters")
    return token
