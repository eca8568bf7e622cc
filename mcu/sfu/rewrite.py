"""The sequence rewriter: one producer's RTP numbering and timing mapped onto an outgoing stream.

Every path that renumbers packets keeps its state in one of these: a consumer for its
subscriber's leg, the relay for an edge worker. It is pure (no I/O; the packet's arrival time is
the only clock) and sits in the per-packet hot path, so :meth:`SequenceRewriter.forward` is one
call per packet that returns a plain int and allocates nothing.

The mapping is a pair of fixed offsets chosen by the first packet after a start: outgoing sequence
= incoming extended sequence + offset (mod 2^16), outgoing timestamp = incoming timestamp +
offset (mod 2^32). Reordered and retransmitted packets therefore keep their place, and a NACK maps
straight back to the incoming number. A halt (a pause, a refused send, a switch to another
source) keeps the outgoing numbering continuous: the packet that starts again (a keyframe for
video) takes the number after the last one sent, so the receiver sees no gap.

A packet left out on purpose (an upper temporal layer a thin link cannot carry, :meth:`drop`)
closes the numbering over itself: the offset shrinks by one from that packet on. The offsets in
force before each such run are kept (:data:`MAX_SHIFTS` runs) so that a reordered packet and a
NACK still map through the offset of their own place; a stream never thinned keeps none and
pays nothing for it.
"""

from __future__ import annotations

from typing import Final

from mcu.media import IncomingPacket
from mcu.sfu.rtp import extend_sequence

# What forward() returns instead of a sequence number when the packet must not be sent. Plain
# negative ints (a sequence number never is one), so the hot path compares once and allocates
# nothing.
WAITING: Final = -1
"Halted until a keyframe: the packet is not sent (ask the source for a keyframe)."
LATE: Final = -2
"Numbered before the packet the rewriter started at: not sent, nothing maps to it."
RESTART: Final = -3
"The incoming numbering jumped by more than ``max_jump``: the rewriter halted; offer it again."

_NO_LIMIT: Final = 1 << 62
MAX_SHIFTS: Final = 64
"""Runs of dropped packets remembered for mapping reordered packets and NACKs: at 30 fps with
only the base layer of three kept, about eight seconds, far beyond what is still repaired."""


class SequenceRewriter:
    """Maps incoming extended sequence numbers and timestamps onto one outgoing stream.

    It is either halted (``started`` False, as it begins) or running. While halted, the first
    packet offered (a keyframe, when one is required) starts it: that packet's outgoing number is
    ``first_sequence`` at the very start, the number after the last one sent at a restart.
    Timestamps keep their offset across a halt, because the source's clock ran on in real time
    and the gap in timestamps is the true pause; after :meth:`rebase` (another source, another
    clock) they continue from the last one sent, advanced by the wall-clock time since.

    ``first_sequence`` / ``first_timestamp``: the first packet's outgoing sequence number and
    timestamp (None: the first packet keeps its own, offset 0). ``start_at_keyframe``: the first
    start waits for a keyframe; ``restart_at_keyframe``: every restart does. ``max_jump``: a forward
    jump in incoming numbering larger than this halts (:data:`RESTART`) rather than passing a gap on
    (None: never). ``keep_late``: packets numbered before the first start are still mapped (with the
    offset they were always going to have) rather than refused as :data:`LATE`; after a restart they
    are refused all the same, since the new offset would number them among packets already sent.
    """

    __slots__ = (
        "_first_timestamp",
        "_floor",
        "_keep_late",
        "_keyframe_wanted",
        "_last",
        "_max_jump",
        "_next_sequence",
        "_rebase_clock_rate",
        "_restart_at_keyframe",
        "_shift_from",
        "_shift_offset",
        "_shift_start",
        "_timestamp_fixed",
        "last_ext",
        "sequence_offset",
        "start_ext",
        "started",
        "timestamp_offset",
    )

    def __init__(
        self,
        first_sequence: int | None = None,
        first_timestamp: int | None = None,
        *,
        start_at_keyframe: bool = False,
        restart_at_keyframe: bool = False,
        max_jump: int | None = None,
        keep_late: bool = False,
    ) -> None:
        self.started = False
        "Whether packets are being forwarded (False before the first one and after a halt)."
        self.sequence_offset = 0
        "Outgoing sequence number = incoming extended sequence number + this, mod 2^16."
        self.timestamp_offset = 0
        "Outgoing timestamp = incoming timestamp + this, mod 2^32."
        self.start_ext = 0
        "Extended sequence number of the packet the rewriter last started at."
        self.last_ext = 0
        "The highest extended sequence number forwarded since that start."
        self._last: IncomingPacket | None = None  # the highest-numbered packet ever forwarded
        # Packets numbered below it are LATE: the start's number, unless keep_late. Extended
        # numbers can be negative (a packet from before the first one, reordered), so no -1.
        self._floor = -_NO_LIMIT
        self._keep_late = keep_late
        self._next_sequence = first_sequence
        self._first_timestamp = first_timestamp
        self._timestamp_fixed = False
        self._rebase_clock_rate: int | None = None
        self._keyframe_wanted = start_at_keyframe
        self._restart_at_keyframe = restart_at_keyframe
        self._max_jump = _NO_LIMIT if max_jump is None else max_jump
        # Each run of dropped packets, oldest first: its first extended number, the first one
        # after it (numbered with the smaller offset) and the offset in force before it.
        self._shift_start: list[int] = []
        self._shift_from: list[int] = []
        self._shift_offset: list[int] = []

    def forward(self, packet: IncomingPacket) -> int:
        """The outgoing sequence number of ``packet``, or :data:`WAITING`, :data:`LATE` or
        :data:`RESTART` when it must not be sent. Starts a halted rewriter."""
        ext = packet.ext_sequence
        if self.started:
            if ext < self._floor:
                return LATE
            if ext - self.last_ext > self._max_jump:
                self.resync()
                return RESTART
            if ext > self.last_ext:
                self.last_ext = ext
                self._last = packet
            elif self._shift_from:
                return self._late(ext)
        elif self._keyframe_wanted and not packet.keyframe:
            return WAITING
        else:
            self._start(packet)
        return (ext + self.sequence_offset) & 0xFFFF

    def drop(self, packet: IncomingPacket) -> int:
        """``packet`` is left out on purpose while running: the numbers close up over it.

        Returns a negative code when nothing needs sending. A packet newer than any forwarded
        takes no number (the offset shrinks by one from it on). A reordered one arrives after its
        number was kept free for it (the packets around it were already sent): that number is
        returned, for the caller to fill with a padding packet, which receivers take in place of
        the missing one without asking for it again.
        """
        if not self.started:
            return WAITING
        ext = packet.ext_sequence
        if ext < self._floor:
            return LATE
        if ext <= self.last_ext:
            return self._late(ext)
        shift_from = self._shift_from
        if shift_from and shift_from[-1] == ext:
            shift_from[-1] = ext + 1  # the run goes on: same offset before it
        else:
            self._shift_start.append(ext)
            shift_from.append(ext + 1)
            self._shift_offset.append(self.sequence_offset)
            if len(shift_from) > MAX_SHIFTS:
                del self._shift_start[0], shift_from[0], self._shift_offset[0]
        self.sequence_offset -= 1
        self.last_ext = ext
        self._last = packet
        return LATE

    def outgoing(self, ext: int) -> int:
        """The outgoing sequence number of a packet already forwarded (a NACK's, mapped back by
        :meth:`incoming`), through the offset of its own place."""
        if self._shift_from:
            sequence = self._late(ext)
            if sequence >= 0:
                return sequence
        return (ext + self.sequence_offset) & 0xFFFF

    def _late(self, ext: int) -> int:
        """The number of a reordered packet, through the offset of its own place; :data:`LATE`
        for one inside a run of drops (a duplicate of a dropped packet: it has no number)."""
        shift_from = self._shift_from
        last = len(shift_from) - 1
        for i in range(last, -1, -1):
            if ext >= shift_from[i]:
                offset = self.sequence_offset if i == last else self._shift_offset[i + 1]
                return (ext + offset) & 0xFFFF
            if ext >= self._shift_start[i]:
                return LATE
        return (ext + self._shift_offset[0]) & 0xFFFF

    def _start(self, packet: IncomingPacket) -> None:
        ext = packet.ext_sequence
        self.started = True
        self._shift_start.clear()  # a new offset: nothing before the start maps any more
        self._shift_from.clear()
        self._shift_offset.clear()
        previous = self._last
        self.start_ext = self.last_ext = ext
        if not self._keep_late or previous is not None:
            # After a restart the offset has changed: a packet from before it would be numbered
            # among those already sent, and a receiver would take its payload for theirs.
            self._floor = ext
        self._last = packet
        first = self._next_sequence
        self.sequence_offset = 0 if first is None else first - ext
        clock_rate = self._rebase_clock_rate
        if clock_rate is not None and previous is not None:
            # Another source's clock: continue from the last timestamp sent, advanced by the
            # wall-clock time since (at least one tick, so no two frames share a timestamp).
            last_sent = previous.timestamp + self.timestamp_offset
            elapsed = max(1, round((packet.arrival - previous.arrival) * clock_rate))
            self.timestamp_offset = (last_sent + elapsed - packet.timestamp) & 0xFFFFFFFF
            self._timestamp_fixed = True
        elif not self._timestamp_fixed:
            if self._first_timestamp is not None:
                self.timestamp_offset = (self._first_timestamp - packet.timestamp) & 0xFFFFFFFF
            self._timestamp_fixed = True
        self._rebase_clock_rate = None

    def _halt(self, next_sequence: int) -> None:
        self.started = False
        self._next_sequence = next_sequence
        self._keyframe_wanted = self._restart_at_keyframe

    def resync(self) -> None:
        """Halt after a break: the next packet started at (a keyframe, if restarts wait for one)
        follows the last one sent, and nothing from before the break maps any more."""
        if self.started:
            self._halt((self.last_ext + self.sequence_offset + 1) & 0xFFFF)

    def withdraw(self, ext: int) -> None:
        """The packet numbered ``ext`` was forwarded but never left: halt so that the receiver
        sees no gap. Its number is used again if it was the newest; otherwise the restart
        follows the newest."""
        if not self.started:
            return
        if ext == self.last_ext:
            self._halt((ext + self.sequence_offset) & 0xFFFF)
        else:
            self.resync()

    def rebase(self, clock_rate: int) -> None:
        """The next start is another source's packets, timed by a clock of ``clock_rate`` Hz:
        continue timestamps from the last one sent, advanced by the time between arrivals.
        Halt first (:meth:`resync`); a rewriter that never forwarded anything simply starts."""
        self._rebase_clock_rate = clock_rate

    def timestamp(self, timestamp: int) -> int:
        """The outgoing timestamp of incoming ``timestamp`` (a packet's, or a sender report's)."""
        return (timestamp + self.timestamp_offset) & 0xFFFFFFFF

    def incoming(self, sequence: int, highest: int) -> int | None:
        """The incoming extended sequence number a receiver's ``sequence`` stands for (a NACK's),
        taken nearest to ``highest`` (the history's newest); None when it is from before the
        start or the rewriter is halted, so there is nothing to resend."""
        if not self.started:
            return None
        ext = extend_sequence((sequence - self.sequence_offset) & 0xFFFF, highest)
        shift_from = self._shift_from
        if shift_from and ext < shift_from[-1]:
            # Numbered before the last run of drops: find the stretch whose offset gives it.
            # Stretches tile the outgoing numbers, newest first.
            for i in range(len(shift_from) - 1, -1, -1):
                ext = extend_sequence((sequence - self._shift_offset[i]) & 0xFFFF, highest)
                if i == 0 or ext >= shift_from[i - 1]:
                    break
        return None if ext < self.start_ext else ext
