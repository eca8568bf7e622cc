"""Slows and then refuses repeated wrong room passwords from one client address.

Pure bookkeeping: the caller passes ``now`` and does the waiting, so tests need no clock.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from dataclasses import dataclass, field

__all__ = ["LoginThrottle"]

WINDOW_SECONDS = 600.0
"""Failures older than this are forgotten."""
LOCKOUT_THRESHOLD = 10
"""Failures within the window that lock the address out."""
LOCKOUT_SECONDS = 900.0
"""How long a locked-out address is refused."""
FREE_FAILURES = 3
"""Failures in the window answered without delay (typos happen)."""
DELAY_STEPS = (0.5, 1.0, 2.0, 4.0)
"""Delay before answering the 4th, 5th, 6th and every later failure."""
MAX_ADDRESSES = 10_000
"""Addresses tracked at once; the least recently active are dropped beyond this."""


@dataclass
class _Entry:
    failures: deque[float] = field(default_factory=lambda: deque(maxlen=LOCKOUT_THRESHOLD))
    locked_until: float = 0.0
    last_seen: float = 0.0


def _key(addr: str) -> str:
    # One IPv6 host usually owns a whole /64; counting per address would let it rotate freely.
    try:
        address = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return addr
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class LoginThrottle:
    """Per-address record of wrong passwords.

    Before checking a password call ``retry_after`` and refuse while it is not None. On a wrong
    password take ``failure_delay``, then ``record_failure``, then wait that long before replying.
    """

    def __init__(self, max_addresses: int = MAX_ADDRESSES) -> None:
        # Ordered by last activity, oldest first, so pruning only ever looks at the front.
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._max_addresses = max_addresses

    def __len__(self) -> int:
        return len(self._entries)

    def retry_after(self, addr: str, now: float) -> float | None:
        """None if ``addr`` may try a password now, else the seconds until it may."""
        self._prune(now)
        entry = self._entries.get(_key(addr))
        if entry is None or entry.locked_until <= now:
            return None
        return entry.locked_until - now

    def failure_delay(self, addr: str, now: float) -> float:
        """Seconds to wait before answering the failed attempt being made now, which counts
        together with those already recorded in the window (so ask before ``record_failure``):
        0 for the first three, then 0.5, 1, 2 and at most 4."""
        entry = self._entries.get(_key(addr))
        if entry is None:
            return 0.0
        recent = 1 + sum(1 for at in entry.failures if now - at < WINDOW_SECONDS)
        if entry.locked_until > now:
            recent = max(recent, LOCKOUT_THRESHOLD)
        if recent <= FREE_FAILURES:
            return 0.0
        return DELAY_STEPS[min(recent - FREE_FAILURES, len(DELAY_STEPS)) - 1]

    def record_failure(self, addr: str, now: float) -> None:
        """Count a wrong password from ``addr``; the tenth within the window locks it out."""
        self._prune(now)
        key = _key(addr)
        entry = self._entries.pop(key, None) or _Entry()
        while entry.failures and now - entry.failures[0] >= WINDOW_SECONDS:
            entry.failures.popleft()
        entry.failures.append(now)
        entry.last_seen = now
        if len(entry.failures) >= LOCKOUT_THRESHOLD:
            entry.locked_until = now + LOCKOUT_SECONDS
            entry.failures.clear()
        self._entries[key] = entry
        while len(self._entries) > self._max_addresses:
            self._entries.popitem(last=False)

    def record_success(self, addr: str) -> None:
        """Forget ``addr``'s failures after a correct password (a lockout still stands)."""
        key = _key(addr)
        entry = self._entries.get(key)
        if entry is not None and not entry.locked_until:
            del self._entries[key]
        elif entry is not None:
            entry.failures.clear()

    def _prune(self, now: float) -> None:
        # An entry is stale once both its window and any lockout have passed.
        horizon = max(WINDOW_SECONDS, LOCKOUT_SECONDS)
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if now - entry.last_seen < horizon or entry.locked_until > now:
                break
            del self._entries[key]
