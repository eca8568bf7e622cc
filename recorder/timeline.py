"""The recording's shared time line: where each track's samples go, in its own clock units.

Every track of one recording is placed on one time line that starts when the recording starts.
A track's RTP timestamps have an arbitrary origin and each publisher's clock its own epoch, so the
first packet of a track anchors its RTP time to its arrival time (monotonic clock) relative to the
recording's start; after that the track follows its RTP time, which is smooth where arrival times
jitter. Audio and video of one participant are anchored the same way at about the same moment, so
they start in sync (to within the network's jitter, tens of milliseconds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

MAX_DRIFT_SECONDS = 5.0
"""RTP time further than this from arrival time means the publisher's clock jumped: re-anchor."""


@dataclass(frozen=True, slots=True)
class RecordingClock:
    """When one recording started; shared by every :class:`~.writer.TrackWriter` of it."""

    started_at: float
    "Wall-clock start (``time.time()``), for the library and file names."
    monotonic_start: float
    "The same instant on the monotonic clock, the one :attr:`IncomingPacket.arrival` uses."

    @classmethod
    def start(cls, monotonic: float | None = None, wall: float | None = None) -> RecordingClock:
        """A clock starting now (or at the given instants, for tests)."""
        return cls(
            time.time() if wall is None else wall,
            time.monotonic() if monotonic is None else monotonic,
        )

    def offset(self, monotonic: float) -> float:
        """Seconds from the start of the recording to ``monotonic`` (may be negative)."""
        return monotonic - self.monotonic_start


class RtpTimeline:
    """Maps one track's 32-bit RTP timestamps to presentation times on the recording's time line.

    Results are in units of ``clock_rate`` (90 kHz video, 48 kHz Opus) counted from the start of
    the recording, so they can be used as MP4 pts with a time base of ``1/clock_rate``.
    """

    __slots__ = ("_base", "_clock", "_last", "_rate", "reanchored")

    def __init__(self, clock: RecordingClock, clock_rate: int) -> None:
        self._clock = clock
        self._rate = clock_rate
        self._base: int | None = None
        "Presentation time of extended RTP timestamp 0."
        self._last: int | None = None
        "The last extended (unwrapped) RTP timestamp."
        self.reanchored = 0
        "How often the publisher's RTP clock jumped and the track was re-anchored to arrival time."

    def pts(self, rtp_timestamp: int, arrival: float) -> int:
        """Presentation time of a sample with ``rtp_timestamp`` that arrived at ``arrival``."""
        arrival_pts = round(self._clock.offset(arrival) * self._rate)
        last = self._last
        if last is None:
            extended = rtp_timestamp
        else:
            # Nearest to the last one across the 32-bit wrap (forward or slightly backward).
            delta = (rtp_timestamp - last) & 0xFFFFFFFF
            extended = last + delta if delta < 0x80000000 else last - (0x100000000 - delta)
        if self._base is None:
            self._base = arrival_pts - extended
        elif abs(self._base + extended - arrival_pts) > MAX_DRIFT_SECONDS * self._rate:
            self._base = arrival_pts - extended
            self.reanchored += 1
        if last is None or extended > last:
            self._last = extended
        return self._base + extended
