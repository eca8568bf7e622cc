"""Room passwords: Argon2id hashes, computed off the event loop."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import weakref
from collections import OrderedDict

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
    """``verify_password_sync`` in the default executor; never raises for a bad password or hash.

    A password that matched recently matches again without another Argon2 run: hundreds of
    sites join a lesson with the same viewer password within minutes, and ~20 ms of CPU each
    would compete with the lesson's forwarding. Only matches are remembered (as an HMAC under a
    per-process key, never the password), keyed with the stored hash, so a changed password
    never matches from memory and wrong guesses always pay the full price.
    """
    fingerprint = _fingerprint(stored_hash, password)
    now = time.monotonic()
    matched_at = _recent_matches.get(fingerprint)
    if matched_at is not None and now - matched_at < MATCH_MEMORY_SECONDS:
        return True
    async with _limit():
        matches = await asyncio.get_running_loop().run_in_executor(
            None, verify_password_sync, stored_hash, password
        )
    if matches:
        _recent_matches[fingerprint] = now
        _recent_matches.move_to_end(fingerprint)
        while len(_recent_matches) > MATCH_MEMORY_ENTRIES:
            _recent_matches.popitem(last=False)
    return matches


MATCH_MEMORY_SECONDS = 600.0
"How long a successful check is remembered."
MATCH_MEMORY_ENTRIES = 10_000
"Most (stored hash, password) matches remembered at once; the oldest are forgotten first."
_fingerprint_key = secrets.token_bytes(32)
_recent_matches: OrderedDict[bytes, float] = OrderedDict()


def _fingerprint(stored_hash: str, password: str) -> bytes:
    message = stored_hash.encode("utf-8") + b"\0" + password.encode("utf-8", "surrogatepass")
    return hmac.new(_fingerprint_key, message, hashlib.sha256).digest()


def remembered_matches() -> int:
    """How many matches are remembered (for tests and diagnostics)."""
    return len(_recent_matches)
