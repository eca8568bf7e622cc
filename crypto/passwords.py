"""Room passwords: Argon2id hashes, computed off the event loop."""

from __future__ import annotations

import asyncio
import weakref

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["hash_password", "hash_password_sync", "verify_password", "verify_password_sync"]

# argon2-cffi's defaults are RFC 9106's low-memory profile (Argon2id, t=3, 64 MiB, p=4).
_HASHER = PasswordHasher()

# Each hash holds 64 MiB for its duration; a burst of joins across many addresses must not
# multiply that by the whole default executor. One semaphore per loop: asyncio primitives
# bind to the loop that first waits on them.
_MAX_CONCURRENT_HASHES = 4
_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _limit() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    semaphore = _limits.get(loop)
    if semaphore is None:
        semaphore = _limits[loop] = asyncio.Semaphore(_MAX_CONCURRENT_HASHES)
    return semaphore


def hash_password_sync(password: str) -> str:
    """Salted Argon2id hash in PHC string form (``$argon2id$v=19$...``). Blocks for 50-250 ms."""
    return _HASHER.hash(password)


def verify_password_sync(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``; False for a mismatch or a malformed hash."""
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        # VerificationError covers VerifyMismatchError; InvalidHashError a corrupt stored value.
        return False


async def hash_password(password: str) -> str:
    """``hash_password_sync`` in the default executor."""
    async with _limit():
        return await asyncio.get_running_loop().run_in_executor(None, hash_password_sync, password)


async def verify_password(stored_hash: str, password: str) -> bool:
    """``verify_password_sync`` in the default executor; never raises for a bad password or hash."""
    async with _limit():
        return await asyncio.get_running_loop().run_in_executor(
            None, verify_password_sync, stored_hash, password
        )
