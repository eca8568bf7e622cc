"""When a slide track sends its next frame: quick follow-ups after a keyframe, then a slow refresh.

A slide is a still picture, so after its keyframe the track has nothing new to say. But many
receivers show a frame only once the *next* frame begins: aiortc's jitter buffer hands a frame to
the decoder only when a packet with a later timestamp arrives, so a keyframe followed by silence
stays invisible until the next frame. With one refresh a second, a new page (or the keyframe a
late joiner asked for) appeared a second late. So every keyframe is followed at once by a few
small frames (an unchanged picture encodes to a ~200-byte delta) at short, growing gaps; the later
ones cover a lost first one without waiting for repair. Then the pace falls back to one refresh
per :data:`REFRESH_INTERVAL`, which keeps receivers' video alive (and repairs what was lost) at
almost no cost. Pure logic: time is passed in, nothing here sleeps or sends.
"""

from __future__ import annotations

REFRESH_INTERVAL = 1.0
"Seconds between frames of an unchanged page once its follow-ups are out."
FOLLOW_UP_GAPS = (0.04, 0.1, 0.3)
"""Seconds from a keyframe to the first follow-up frame, then between follow-ups.

40 ms is about one frame time at 25-30 fps: receivers that wait for the next frame show the page
almost at once, yet the keyframe's own packets are out first. Three follow-ups cost three tiny
encodes per page turn; their sum stays under ``REFRESH_INTERVAL``."""


class SlideSchedule:
    """The send times of one slide track.

    ``delay(now)`` is how long to wait before the next frame; ``sent(now, keyframe)`` is called
    as each frame goes out. A new schedule is due at once.
    """

    __slots__ = ("_after_keyframe", "_due")

    def __init__(self) -> None:
        self._after_keyframe = len(FOLLOW_UP_GAPS)  # no follow-ups pending
        self._due = 0.0

    def delay(self, now: float) -> float:
        """Seconds from ``now`` until the next frame is due (0 when it is due or overdue)."""
        return max(0.0, self._due - now)

    def sent(self, now: float, keyframe: bool) -> None:
        """A frame went out at ``now``: a keyframe starts the follow-ups again."""
        if keyframe:
            self._after_keyframe = 0
        if self._after_keyframe < len(FOLLOW_UP_GAPS):
            gap = FOLLOW_UP_GAPS[self._after_keyframe]
            self._after_keyframe += 1
        else:
            gap = REFRESH_INTERVAL
        self._due = now + gap

    def failed(self, now: float) -> None:
        """Encoding a frame failed at ``now``: try again at the refresh pace, not in a busy loop."""
        self._due = now + REFRESH_INTERVAL
