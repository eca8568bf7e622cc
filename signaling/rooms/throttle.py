"""Slows and then refuses repeated wrong room passwords, per room and per client address.

Pure bookkeeping: the caller passes ``now`` and does the waiting, so tests need no clock.

Three scopes, each a window of failures that locks for a while once full:

- one address guessing one room's password (a mistyping doctor, or a guesser): 10 failures lock
  that address out of *that room's passwords* for 15 minutes, and nothing else, so one person
  behind a hospital's NAT never locks out the hospital's other rooms;
- one address across every room (a scanner spraying rooms or probing ids): 30 failures;
- one room from every address (a guesser rotating addresses): 100 failures lock the room's
  passwords for 5 minutes.

Valid invites and session tokens never consult the throttle: their signatures cannot be
guessed, so nobody's guesses can refuse them. An attempt counts as soon as it starts and until
its hash check ends (:meth:`LoginThrottle.begin`), so 500 simultaneous wrong passwords from one
address are not all evaluated: once the in-flight and recorded failures fill a scope, the rest
are refused at once. Attempts with the same password as a check already running wait for that
check instead of starting one (``signaling/rooms/entrance.py``), so 400 sites joining a lesson with
its viewer password at once cost one hash and no in-flight slots.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from dataclasses import dataclass, field

__all__ = ["LoginThrottle", "Scope"]

WINDOW_SECONDS = 600.0
"""Failures older than this are forgotten."""
FREE_FAILURES = 3
"""Failures in the window answered without delay (typos happen)."""
DELAY_STEPS = (0.5, 1.0, 2.0, 4.0)
"""Delay before answering the 4th, 5th, 6th and every later failure of one address and room."""
MAX_ENTRIES = 20_000
"""Scopes tracked at once; the least recently active are dropped beyond this."""


@dataclass(frozen=True)
class Scope:
    """How many failures within the window lock a scope, and for how long."""

    threshold: int
    lock_seconds: float


ADDRESS_IN_ROOM = Scope(threshold=10, lock_seconds=900.0)
ADDRESS = Scope(threshold=30, lock_seconds=900.0)
ROOM = Scope(threshold=100, lock_seconds=300.0)


@dataclass
class _Entry:
    failures: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    locked_until: float = 0.0
    last_seen: float = 0.0


def _address_key(addr: str) -> str:
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
    """Failures per (address, room), per address and per room, with attempts in flight.

    A password check goes: ``begin`` (refuse while it returns a number of seconds), the hash
    check, then ``failed`` (wait the seconds it returns before replying) or ``succeeded``.
    Something that is no password check but should count against an address (a lookup of an
    unknown room) calls ``address_retry_after`` and ``address_failed``.
    """

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        # Ordered by last activity, oldest first, so pruning only ever looks at the front.
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._max_entries = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    # -- a password check ----------------------------------------------------------------------

    def begin(self, addr: str, room: str, now: float) -> float | None:
        """Start a password check of ``room`` from ``addr``: None if it may go ahead (it then
        counts as in flight until ``failed`` or ``succeeded``), else seconds until it may."""
        self._prune(now)
        keys = self._keys(addr, room)
        retry = max((self._retry(key, scope, now) for key, scope in keys), default=0.0)
        if retry > 0:
            return retry
        for key, _ in keys:
            self._touch(key, now).in_flight += 1
        return None

    def locked(self, addr: str, room: str, now: float) -> float | None:
        """Like :meth:`retry_after` but blind to checks in flight: for an attempt that waits on
        an identical check already running rather than starting one."""
        self._prune(now)
        retry = 0.0
        for key, _ in self._keys(addr, room):
            entry = self._entries.get(key)
            if entry is None:
                continue
            if entry.locked_until > now:
                retry = max(retry, entry.locked_until - now)
        return retry if retry > 0 else None

    def failed(self, addr: str, room: str, now: float, *, reserved: bool = True) -> float:
        """The check begun for ``room`` from ``addr`` found a wrong password: record it, and
        return the seconds to wait before answering (0 for the first three, then 0.5 up to 4).
        ``reserved=False`` for an attempt that shared another's check (it reserved nothing)."""
        delay = 0.0
        for key, scope in self._keys(addr, room):
            entry = self._touch(key, now)
            if reserved:
                entry.in_flight = max(0, entry.in_flight - 1)
            self._record(entry, scope, now)
            if scope is ADDRESS_IN_ROOM:
                recent = len(entry.failures) if not entry.locked_until > now else scope.threshold
                if recent > FREE_FAILURES:
                    delay = DELAY_STEPS[min(recent - FREE_FAILURES, len(DELAY_STEPS)) - 1]
        return delay

    def succeeded(self, addr: str, room: str, *, reserved: bool = True) -> None:
        """The check found a right password: the address's failures on this room are forgotten
        (a lockout still stands); the wider scopes keep theirs."""
        for key, _ in self._keys(addr, room):
            entry = self._entries.get(key)
            if entry is None:
                continue
            if reserved:
                entry.in_flight = max(0, entry.in_flight - 1)
            if key[1] and key[0]:  # the address in this room
                entry.failures.clear()

    def abandon(self, addr: str, room: str) -> None:
        """The check begun for ``room`` from ``addr`` ended without a verdict (cancelled)."""
        for key, _ in self._keys(addr, room):
            entry = self._entries.get(key)
            if entry is not None:
                entry.in_flight = max(0, entry.in_flight - 1)

    def retry_after(self, addr: str, room: str, now: float) -> float | None:
        """None if a password check of ``room`` from ``addr`` may start now, else the seconds
        until it may (nothing is reserved)."""
        self._prune(now)
        retry = max((self._retry(key, scope, now) for key, scope in self._keys(addr, room)))
        return retry if retry > 0 else None

    # -- the address alone ---------------------------------------------------------------------

    def address_retry_after(self, addr: str, now: float) -> float | None:
        """None unless ``addr`` is locked out of everything (its failures across rooms)."""
        self._prune(now)
        retry = self._retry((_address_key(addr), ""), ADDRESS, now)
        return retry if retry > 0 else None

    def address_failed(self, addr: str, now: float) -> float:
        """A failure of ``addr`` that names no existing room (an unknown room id); returns the
        seconds to wait before answering."""
        entry = self._touch((_address_key(addr), ""), now)
        self._record(entry, ADDRESS, now)
        recent = len(entry.failures) if not entry.locked_until > now else ADDRESS.threshold
        if recent <= FREE_FAILURES:
            return 0.0
        return DELAY_STEPS[min(recent - FREE_FAILURES, len(DELAY_STEPS)) - 1]

    # -- bookkeeping ---------------------------------------------------------------------------

    @staticmethod
    def _keys(addr: str, room: str) -> list[tuple[tuple[str, str], Scope]]:
        address = _address_key(addr)
        return [((address, room), ADDRESS_IN_ROOM), ((address, ""), ADDRESS), (("", room), ROOM)]

    def _retry(self, key: tuple[str, str], scope: Scope, now: float) -> float:
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        if entry.locked_until > now:
            return entry.locked_until - now
        _forget_old(entry, now)
        if len(entry.failures) + entry.in_flight >= scope.threshold:
            # Full with attempts still being checked: refuse until the oldest failure ages out
            # (or, with none recorded yet, for a moment: the checks end within seconds).
            return WINDOW_SECONDS - (now - entry.failures[0]) if entry.failures else 1.0
        return 0.0

    def _touch(self, key: tuple[str, str], now: float) -> _Entry:
        entry = self._entries.pop(key, None) or _Entry()
        entry.last_seen = now
        self._entries[key] = entry
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return entry

    @staticmethod
    def _record(entry: _Entry, scope: Scope, now: float) -> None:
        _forget_old(entry, now)
        entry.failures.append(now)
        if len(entry.failures) >= scope.threshold:
            entry.locked_until = now + scope.lock_seconds
            entry.failures.clear()

    def _prune(self, now: float) -> None:
        # An entry is stale once its window and any lockout have passed and nothing is in flight.
        horizon = max(WINDOW_SECONDS, ADDRESS_IN_ROOM.lock_seconds, ADDRESS.lock_seconds)
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if now - entry.last_seen < horizon or entry.locked_until > now or entry.in_flight:
                break
            del self._entries[key]


def _forget_old(entry: _Entry, now: float) -> None:
    while entry.failures and now - entry.failures[0] >= WINDOW_SECONDS:
        entry.failures.popleft()
