"""Which of a publisher's packets to ask for again (RTCP NACK), and when: pure, time passed in.

aiortc's receiver asks for missing packets only when a *new* gap appears, and then for every
packet still missing. A lost NACK or a lost retransmission therefore waits for the next,
unrelated loss, and the picture froze meanwhile at every subscriber, who can only be repaired
from what the server has (a browser 5 % lossy each way: 3 freezes, 2.0 s in all, in 10 s at
its subscriber; `benchmarks/bench_loss.py`). Here a missing packet is asked for at
once and again every `retry_interval` until it arrives, a bounded number of times (libwebrtc's
receiver does the same, its interval set by the round-trip time).

`retry_interval` follows the round-trip time when it can be measured: a packet that arrives
after exactly one request took about one round trip to come back. `due` is consulted as packets
arrive (a video stream brings one every few milliseconds; while nothing arrives, nothing new
can be learnt about what is missing either), so no timer is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcu.sfu.rtp import SequenceUnwrapper

DEFAULT_RETRY_INTERVAL = 0.1
"Seconds between requests for one packet before any round trip was measured (libwebrtc: 100 ms)."

MIN_RETRY_INTERVAL = 0.02
"Never ask more often: on a LAN the round trip is a millisecond, the publisher's answer is not."

MAX_RETRY_INTERVAL = 0.5
"Never wait longer between requests: past this, subscribers' pictures are frozen anyway."

RETRY_RTT_FACTOR = 1.5
"The interval is this many round trips, so that an answer on its way is not asked for again."

MAX_TRIES = 10
"Requests per packet before giving up (libwebrtc: 10); subscribers then ask for a keyframe."

MAX_MISSING = 500
"""At most this many packets are tracked. A larger gap (an outage) is not worth repairing
packet by packet: the publisher's history no longer holds them, and a keyframe repairs it."""


@dataclass(slots=True)
class _Missing:
    sequence: int
    "Extended sequence number."
    sent_at: float
    tries: int


class NackRequester:
    """The missing packets of one incoming stream and when to ask for each again.

    Feed every packet's sequence number (retransmissions unwrapped to the original number) to
    `on_packet`, then send a NACK for whatever `due` returns.
    """

    __slots__ = ("_missing", "_unwrapper", "rtt")

    def __init__(self) -> None:
        self._unwrapper = SequenceUnwrapper()
        self._missing: dict[int, _Missing] = {}
        self.rtt: float | None = None
        "Smoothed round trip, from packets that came back after one request (None: unknown)."

    @property
    def missing(self) -> list[int]:
        """The 16-bit sequence numbers still missing, oldest first."""
        return [entry.sequence & 0xFFFF for entry in self._missing.values()]

    @property
    def retry_interval(self) -> float:
        """Seconds between two requests for the same packet."""
        if self.rtt is None:
            return DEFAULT_RETRY_INTERVAL
        return min(MAX_RETRY_INTERVAL, max(MIN_RETRY_INTERVAL, RETRY_RTT_FACTOR * self.rtt))

    def on_packet(self, sequence: int, now: float) -> None:
        """A packet with this 16-bit sequence number arrived (original or retransmission)."""
        highest = self._unwrapper.highest
        extended = self._unwrapper.unwrap(sequence)
        if highest is None:
            return
        if extended > highest:
            gap = extended - highest - 1
            if gap > MAX_MISSING or len(self._missing) + gap > MAX_MISSING:
                self._missing.clear()  # beyond repair packet by packet (see MAX_MISSING)
                return
            for missing in range(highest + 1, extended):
                # Never asked yet: due at once.
                self._missing[missing] = _Missing(missing, float("-inf"), 0)
            return
        entry = self._missing.pop(extended, None)
        if entry is not None and entry.tries == 1:
            sample = now - entry.sent_at
            self.rtt = sample if self.rtt is None else 0.875 * self.rtt + 0.125 * sample

    def forget(self) -> int:
        """Ask for nothing that is missing now (it was shed on purpose); returns how many."""
        count = len(self._missing)
        self._missing.clear()
        return count

    def due(self, now: float) -> list[int]:
        """The 16-bit sequence numbers to ask for now, each then counted as asked."""
        interval = self.retry_interval
        due: list[int] = []
        given_up: list[int] = []
        for entry in self._missing.values():
            if now - entry.sent_at < interval:
                continue
            if entry.tries >= MAX_TRIES:
                given_up.append(entry.sequence)
                continue
            entry.tries += 1
            entry.sent_at = now
            due.append(entry.sequence & 0xFFFF)
        for sequence in given_up:
            del self._missing[sequence]
        return due
