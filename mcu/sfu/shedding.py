"""Load shedding at a producer: what to forward while the server runs behind its ingress.

When the server cannot forward everything it receives (another process took its core, too many
viewers), packets wait in the socket's receive buffer and everyone gets everything ever later,
until the buffer overflows and the kernel drops at random: every viewer's video breaks at once,
and the publisher's connection dies when its keepalives wait in the same queue. Shedding on
purpose, once per producer and so the same for every viewer, keeps the delay bounded and picks
what to give up, in this order:

1. video delta frames, while ingress runs more than :data:`SHED_ABOVE` late. A delta frame
   depends on the one before, so video resumes only at a keyframe; keyframes still go out, so
   viewers see a picture every keyframe interval, and every consumer restarts at the same one,
   numbered without a gap (nothing to NACK). Once caught up (:data:`RESUME_BELOW`), the producer
   asks the publisher for a keyframe rather than wait for the next one;
2. keyframes too, beyond :data:`KEYFRAMES_SHED_ABOVE`: video stops, audio goes on;
3. audio, last, and only packets more than :data:`STALE_ABOVE` late: too late to be played
   live, and the queue must drain before the publisher's connection times out.

:class:`LoadShedder` is pure: the caller passes each packet's timestamp, whether it starts a
keyframe, and the ingress lateness measured for it (:mod:`mcu.sfu.lateness`).
"""

from __future__ import annotations

import enum

SHED_ABOVE = 0.6
"""Seconds behind beyond which video delta frames are shed. Above what one keyframe burst costs a
server that keeps up on average (~0.4 s: a 100 kB keyframe to 400 viewers on one core)."""
RESUME_BELOW = 0.15
"Seconds behind under which full video resumes, at the next keyframe (hysteresis)."
KEYFRAMES_SHED_ABOVE = 2.0
"Seconds behind beyond which keyframes are shed too: no video at all, audio only."
STALE_ABOVE = 4.0
"""Seconds behind beyond which any packet, audio included, is dropped as too old to play; the
publisher's connection checks (ICE consent, every ~5 s) must not wait much longer than this."""


class Verdict(enum.IntEnum):
    """What the producer does with one packet."""

    FORWARD = 0
    "Forward to every sink."
    SHED = 1
    "Forward only to sinks that keep everything (a recording)."
    CAUGHT_UP = 2
    "Shed, and ask the publisher for a keyframe: the server has caught up and video can resume."
    RESUME = 3
    "Forward to every sink, after telling the others to renumber on from their last packet."


class LoadShedder:
    """Decides, per packet of one producer, whether it is forwarded.

    Video is decided per frame, at its first packet (the first with a newer timestamp): the rest
    of the frame follows that verdict, so no frame is cut in two by a lateness sample taken in
    its middle, except beyond :data:`STALE_ABOVE`, where nothing is forwarded at all.
    """

    __slots__ = ("_frame", "_frame_verdict", "_gap", "_video", "frames_shed", "shedding")

    def __init__(self, video: bool) -> None:
        self._video = video
        self.shedding = False
        "Video: delta frames are being shed until a keyframe arrives in time."
        self.frames_shed = 0
        "Video frames (first packets) not forwarded to consumers."
        self._frame: int | None = None  # RTP timestamp of the newest frame decided
        self._frame_verdict = Verdict.FORWARD
        self._gap = False  # something was shed since the last packet forwarded

    def decide(self, timestamp: int, keyframe: bool, lateness: float) -> Verdict:
        """The verdict for one packet: its RTP timestamp, whether it starts a keyframe, and how
        late (seconds) the ingress ran when it was processed."""
        if lateness > STALE_ABOVE:
            self._gap = True
            if self._video:
                self.shedding = True
                if self._new_frame(timestamp):
                    self._frame = timestamp
                    self._frame_verdict = Verdict.SHED
                    self.frames_shed += 1
            return Verdict.SHED
        if not self._video:
            if self._gap:
                self._gap = False
                return Verdict.RESUME
            return Verdict.FORWARD
        if not self._new_frame(timestamp):
            if timestamp == self._frame:
                verdict = self._frame_verdict
                return Verdict.FORWARD if verdict is Verdict.RESUME else verdict
            # A late packet of an older frame (a retransmission): only while nothing is shed,
            # or it would land after a gap the consumers have already renumbered over.
            return Verdict.SHED if self.shedding or self._gap else Verdict.FORWARD
        self._frame = timestamp
        verdict = self._decide_frame(keyframe, lateness)
        if verdict is Verdict.SHED or verdict is Verdict.CAUGHT_UP:
            self.frames_shed += 1
            self._gap = True
        elif self._gap:
            self._gap = False
            verdict = Verdict.RESUME
        self._frame_verdict = Verdict.SHED if verdict is Verdict.CAUGHT_UP else verdict
        return verdict

    def _decide_frame(self, keyframe: bool, lateness: float) -> Verdict:
        if lateness > KEYFRAMES_SHED_ABOVE:
            self.shedding = True
            return Verdict.SHED
        if keyframe:
            if lateness < RESUME_BELOW:
                self.shedding = False
            return Verdict.FORWARD
        if self.shedding:
            return Verdict.CAUGHT_UP if lateness < RESUME_BELOW else Verdict.SHED
        if lateness > SHED_ABOVE:
            self.shedding = True
            return Verdict.SHED
        return Verdict.FORWARD

    def _new_frame(self, timestamp: int) -> bool:
        if self._frame is None:
            return True
        return 0 < ((timestamp - self._frame) & 0xFFFFFFFF) < 0x80000000
