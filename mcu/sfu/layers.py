"""Which temporal layers of a VP8 camera one subscriber receives, and the picture ids it sees.

A browser publishing with ``scalabilityMode: "L1T3"`` sends frames in three temporal layers
(TID 0, 2, 1, 2, 0, ...: the base layer at a quarter of the frame rate, TID 1 doubling it, TID 2
doubling it again); frames of a layer reference only frames of the same or lower layers. A
subscriber whose link cannot carry the whole stream is sent the lower layers only: fewer frames
per second, every one of them decodable.

This module decides per frame (all packets of a frame share its RTP timestamp and TID) and keeps
the VP8 picture ids continuous: a receiver waits for a frame whose picture id it never saw before
decoding anything after it (Chromium's reference finder stashes such frames), so each dropped
frame moves the outgoing picture ids of later frames down by one. TL0PICIDX needs no change,
since base-layer frames are never dropped. The sequence numbers close up in the consumer's
:class:`~mcu.sfu.rewrite.SequenceRewriter` (``drop``).

Going down takes effect at the next frame. Going up waits for a frame of the new layer marked
as a layer sync (Y bit: it references only the base layer), or a keyframe; a frame of a layer
just switched on could otherwise reference a frame the subscriber never got.

Pure: no clock, no I/O; the consumer calls it only when it has a filter, so a subscriber that was
never thinned pays nothing.
"""

from __future__ import annotations

from mcu.codecs.vp8 import rewrite_picture_id
from mcu.media import IncomingPacket

__all__ = ["ALL_LAYERS", "LayerFilter"]

ALL_LAYERS = 3
"""The highest temporal id kept by a filter that keeps everything (VP8 allows TID 0..3)."""
_RECENT_DROPS = 64
"Picture ids of dropped frames remembered, for packets of earlier frames arriving late."


class LayerFilter:
    """One consumer's choice of temporal layers, applied frame by frame."""

    __slots__ = (
        "_dropped",
        "_frame_pid",
        "_frame_shift",
        "_frame_timestamp",
        "_frame_verdict",
        "_shift",
        "current",
        "frames_dropped",
        "paused",
        "target",
        "waiting_since",
    )

    def __init__(self) -> None:
        self.target = ALL_LAYERS
        "The highest temporal id wanted (set by the subscriber's ladder)."
        self.current = ALL_LAYERS
        "The highest temporal id being forwarded: follows ``target`` at a switch point."
        self.paused = False
        "Nothing of this stream is forwarded (the ladder shows the subscriber fewer cameras)."
        self.frames_dropped = 0
        "Frames not forwarded because their layer was above ``current``."
        self.waiting_since: float | None = None
        "Arrival time of the first frame that waited for a switch up (None: not waiting)."
        self._shift = 0  # frames dropped so far: later picture ids move down by this much
        self._dropped: list[int] = []  # picture ids of recently dropped frames
        self._frame_timestamp = -1
        self._frame_verdict = True
        self._frame_pid = -1
        self._frame_shift = 0

    def set_target(self, highest_temporal_id: int) -> None:
        """Forward temporal layers up to ``highest_temporal_id`` from the next switch point."""
        self.target = highest_temporal_id

    def admits(self, packet: IncomingPacket) -> bool:
        """Whether ``packet`` is forwarded (the same answer for every packet of its frame)."""
        if packet.timestamp == self._frame_timestamp:
            return self._frame_verdict
        tid = packet.temporal_id
        if tid < 0:  # no temporal layers in this stream: nothing to choose
            return True
        target = self.target
        if target < self.current:
            self.current = target
        elif target > self.current:
            if packet.keyframe:
                self.current = target
            elif packet.layer_sync and self.current < tid <= target:
                self.current = tid
            if target > self.current and self.waiting_since is None:
                self.waiting_since = packet.arrival
            elif target == self.current:
                self.waiting_since = None
        verdict = tid <= self.current
        if self._is_new_frame(packet):
            self._frame_timestamp = packet.timestamp
            self._frame_verdict = verdict
            if not verdict:
                self._note_dropped(packet)
        return verdict

    def _is_new_frame(self, packet: IncomingPacket) -> bool:
        # A packet of an older frame arriving late is judged by its layer alone, without
        # touching what was decided for the frame in progress.
        return (packet.timestamp - self._frame_timestamp) & 0xFFFFFFFF < 0x80000000 or (
            self._frame_timestamp < 0
        )

    def _note_dropped(self, packet: IncomingPacket) -> None:
        pid = packet.picture_id
        if pid < 0 or pid in self._dropped:
            return
        self.frames_dropped += 1
        self._shift += 1
        self._dropped.append(pid)
        if len(self._dropped) > _RECENT_DROPS:
            del self._dropped[0]

    def payload(self, packet: IncomingPacket) -> bytes | bytearray:
        """The payload to forward: the picture id moved down over the frames dropped before it
        (``packet.payload`` itself while none were)."""
        if not self._shift or packet.picture_id < 0:
            return packet.payload
        pid = packet.picture_id
        if pid != self._frame_pid:
            self._frame_pid = pid
            self._frame_shift = self._shift_at(pid)
        data = bytearray(packet.payload)
        try:
            rewrite_picture_id(data, pid - self._frame_shift, None)
        except ValueError:  # cannot happen for a parsed picture id; forward it as it came
            return packet.payload
        return data

    def _shift_at(self, pid: int) -> int:
        # Dropped frames newer than this one (a late packet of an earlier frame) do not count.
        later = 0
        for dropped in self._dropped:
            if 0 < (dropped - pid) & 0x7FFF < 0x4000:
                later += 1
        return self._shift - later
