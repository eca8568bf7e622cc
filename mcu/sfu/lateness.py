"""Ingress lateness: how long a publisher's packets wait before the server gets to them.

A starved server does not lose packets at first. The kernel queues them in the socket's receive
buffer (several MiB: tens of seconds of a lecture) and the server forwards them ever later, while
its event loop, which runs whenever it gets the CPU, looks punctual: a timer that wakes late by a
few milliseconds says nothing about a queue of thirty seconds. The age of the datagrams being
read says it all. The kernel stamps each datagram as it arrives, and ``SIOCGSTAMP`` returns the
stamp of the last one read from a socket, so *now minus that stamp* is how long the newest packet
in hand waited, in the kernel and in user space, before the server processed it.

:class:`IngressLateness` is the pure part (samples given with the time they were taken);
:func:`last_arrival` is the one system call; :class:`LatenessProbe` ties them to a socket at
most once per :data:`SAMPLE_INTERVAL`, never per packet; :data:`INGRESS` knows every live probe,
for admission (:meth:`IngressBoard.behind`) and ``/metrics``.
"""

from __future__ import annotations

import fcntl
import statistics
import struct
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence

from mcu.sfu.shedding import SHED_ABOVE

SIOCGSTAMP = 0x8906
"linux/sockios.h (``SIOCGSTAMP_OLD``): the receive time of the last datagram read, a timeval."
_TIMEVAL = struct.Struct("@ll")
SAMPLE_INTERVAL = 0.05
"Seconds between two samples of one socket (one ioctl): 20 a second, whatever the packet rate."
REFUSE_SUSTAINED = 0.2
"""New viewers are refused while a socket's median lateness over :data:`WINDOW` is this high:
the server is behind for good, not for one keyframe burst."""
REFUSE_PEAK = SHED_ABOVE
"""... or while a socket was this late at any moment of the window: load was just being shed,
and one more viewer would only make it shed more."""
WINDOW = 2.0
"""Seconds of samples :meth:`IngressLateness.sustained` looks at, and after which a quiet
socket's last sample no longer counts."""


def last_arrival(fd: int) -> float | None:
    """When the kernel received the last datagram read from socket ``fd`` (``time.time()``
    clock), or None before the first one. The first call switches stamping on."""
    try:
        stamp = fcntl.ioctl(fd, SIOCGSTAMP, bytes(_TIMEVAL.size))
    except OSError:  # ENOENT: nothing stamped read yet; EBADF: the socket closed meanwhile
        return None
    seconds, microseconds = _TIMEVAL.unpack(stamp)
    return float(seconds + microseconds / 1e6)


class IngressLateness:
    """One ingress socket's lateness samples: the latest, and the recent median.

    ``now`` is any monotonic clock, the same for every call; a lateness is a duration in seconds.
    """

    __slots__ = ("__weakref__", "_samples", "current", "interval", "next_due", "updated", "window")

    def __init__(self, interval: float = SAMPLE_INTERVAL, window: float = WINDOW) -> None:
        self.interval = interval
        self.window = window
        self.current = 0.0
        "The latest sample, in seconds."
        self.updated = float("-inf")
        "When the latest sample was taken."
        self.next_due = float("-inf")
        "When the next sample is due (the caller checks this per packet: one compare)."
        self._samples: deque[tuple[float, float]] = deque()

    def record(self, lateness: float, now: float) -> float:
        """A sample taken at ``now``: the newest packet in hand arrived ``lateness`` s ago."""
        lateness = max(0.0, lateness)  # the two clocks are read a few microseconds apart
        self.current = lateness
        self.updated = now
        self.next_due = now + self.interval
        samples = self._samples
        samples.append((now, lateness))
        horizon = now - self.window
        while samples[0][0] < horizon:
            samples.popleft()
        return lateness

    def latest(self, now: float) -> float:
        """The latest sample, or 0 when the socket has been quiet for a whole window."""
        return self.current if now - self.updated <= self.window else 0.0

    def sustained(self, now: float) -> float:
        """The median sample of the last ``window`` seconds (0 without any): high only when the
        server stays behind, not while one keyframe burst is being forwarded."""
        horizon = now - self.window
        recent = [lateness for taken, lateness in self._samples if taken >= horizon]
        return statistics.median(recent) if recent else 0.0

    def peak(self, now: float) -> float:
        """The largest sample of the last ``window`` seconds (0 without any)."""
        horizon = now - self.window
        return max((lateness for taken, lateness in self._samples if taken >= horizon), default=0.0)


class LatenessProbe:
    """Samples one socket's lateness when due: the I/O around :class:`IngressLateness`."""

    __slots__ = ("_wall", "estimate")

    def __init__(
        self,
        estimate: IngressLateness | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
        board: IngressBoard | None = None,
    ) -> None:
        self.estimate = estimate if estimate is not None else IngressLateness()
        self._wall = wall_clock
        (board if board is not None else INGRESS).add(self.estimate)

    def sample(self, fd: int, now: float) -> float:
        """The socket's lateness, sampled anew when one is due (``now``: monotonic)."""
        estimate = self.estimate
        if now < estimate.next_due:
            return estimate.current
        arrival = last_arrival(fd)
        if arrival is None:
            estimate.next_due = now + estimate.interval
            return estimate.current
        return estimate.record(self._wall() - arrival, now)

    def sample_freshest(self, fds: Sequence[int], now: float) -> int:
        """:meth:`sample` over every socket of one connection, when due; returns the socket whose
        stamp is the newest (-1: none stamped yet, or not due).

        An ICE connection has a socket per local candidate, and the media come on one of them,
        not always the one its nominated pair names (seen with two host candidates: the
        nominated pair's socket carried only the consent checks, every few seconds, so the
        "lateness" read from it climbed to 5 s and the publisher's video was shed, keyframes
        only, on an idle server). The socket read last is the one the media come on."""
        estimate = self.estimate
        if now < estimate.next_due:
            return -1
        freshest, newest = -1, 0.0
        for fd in fds:
            arrival = last_arrival(fd)
            if arrival is not None and (freshest < 0 or arrival > newest):
                freshest, newest = fd, arrival
        if freshest < 0:
            estimate.next_due = now + estimate.interval
        else:
            estimate.record(self._wall() - newest, now)
        return freshest


class IngressBoard:
    """Every live ingress socket's lateness, for admission and ``/metrics``."""

    def __init__(self) -> None:
        self._estimates: weakref.WeakSet[IngressLateness] = weakref.WeakSet()

    def add(self, estimate: IngressLateness) -> None:
        """Count ``estimate`` until it is garbage (its connection closed)."""
        self._estimates.add(estimate)

    def discard(self, estimate: IngressLateness) -> None:
        """Stop counting ``estimate`` (its connection closed)."""
        self._estimates.discard(estimate)

    def worst(self, now: float) -> float:
        """The latest lateness of the socket furthest behind (0 with none)."""
        return max((e.latest(now) for e in list(self._estimates)), default=0.0)

    def worst_sustained(self, now: float) -> float:
        """The largest recent median of any socket (0 with none)."""
        return max((e.sustained(now) for e in list(self._estimates)), default=0.0)

    def behind(self, now: float) -> bool:
        """Whether new viewers should be refused: some socket stays :data:`REFUSE_SUSTAINED`
        late, or was late enough for load to be shed, within the last window."""
        return any(
            e.sustained(now) >= REFUSE_SUSTAINED or e.peak(now) >= REFUSE_PEAK
            for e in list(self._estimates)
        )


INGRESS = IngressBoard()
"This process's ingress sockets (publishers' connections and the relay socket)."
