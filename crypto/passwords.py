"""Room passwords: Argon2id hashes, computed off the event loop."""

from __future__ import annotations

import asyncio
import weakref

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["hash_password", "hash_password_sync", "verify_password", "verify_password_sync"]

# OWASP's recommended Argon2id profile (t=2, 19 MiB, p=1): still memory-hard, and ~20 ms of one
# core per check instead of ~170 ms for argon2-cffi's default (RFC 9106 low-memory: t=3, 64 MiB,
# p=4). Join bursts before a lesson were bound by password checks (measured with
# benchmarks/loadtest.py); wrong guesses are throttled per address on top. Hashes made with
# other parameters still verify: the parameters travel in the PHC string.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)

# Each hash holds its memory for its duration; a burst of joins across many addresses must not
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
    """Salted Argon2id hash in PHC string form (``$argon2id$v=19$...``). Blocks for ~20 ms."""
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
