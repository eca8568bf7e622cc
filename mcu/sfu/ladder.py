"""The ladder: what one subscriber receives, chosen from its downlink estimate.

Rungs, from everything down (each gives up cameras' frames or cameras, never audio or content,
which a consultation needs whole: a voice that breaks up or an image that smears is worse than
a face at fewer frames per second):

====================  ======================================================================
``full``              every stream, every layer
``fewer_frames``      cameras: temporal layers 0 and 1 (half the frame rate)
``fewest_frames``     cameras: the base layer only (a quarter of the frame rate)
``speaker_only``      only the active speaker's camera (as many layers as fit), the others
                      paused; audio and content whole
====================  ======================================================================

Below ``speaker_only`` come the single-picture mix at a fitting bitrate and audio + content
only; they are not rungs yet: :data:`LOWEST` is where the ladder stops, and a subscriber at it
whose estimate is still short is reported as ``short`` so the room can offer the mix.

A rung fits when what it needs (the streams' measured rates per temporal layer) is at most
:data:`HEADROOM` of the estimate. Going down is immediate, to the best rung that fits. Going up
is one rung at a time, when the rung above needs at most :data:`UP_HEADROOM` of the estimate and
has done so for :data:`UP_HOLD_SECONDS` (and that long after the last step down): stepping up
and back costs the subscriber a keyframe wait each time, so a climb followed at once by a step
down doubles the next hold (:data:`FAILED_CLIMB_SECONDS`). Pure: the clock is passed in.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from mcu.media import TrackSource

__all__ = [
    "FAILED_CLIMB_SECONDS",
    "HEADROOM",
    "LOWEST",
    "MAX_HOLD_SECONDS",
    "UP_HEADROOM",
    "UP_HOLD_SECONDS",
    "Ladder",
    "Rung",
    "StreamPlan",
    "StreamRate",
]

HEADROOM = 0.85
"""Share of the estimate media may fill: the rest is for retransmissions, RTCP and bursts."""
UP_HEADROOM = 0.7
"""Share of the estimate the rung above may need before the ladder climbs to it."""
UP_HOLD_SECONDS = 5.0
"""How long the rung above must keep fitting before climbing (and the wait after a step down)."""
FAILED_CLIMB_SECONDS = 10.0
"""A step down this soon after a climb means the climb did not fit: the next hold is doubled
(up to :data:`MAX_HOLD_SECONDS`), so a link at its limit is not probed, and its subscriber made
to wait for keyframes, every few seconds."""
MAX_HOLD_SECONDS = 60.0
"The longest hold before climbing again after climbs that failed."


class Rung(enum.IntEnum):
    """What a subscriber receives; higher values give up more."""

    FULL = 0
    FEWER_FRAMES = 1
    FEWEST_FRAMES = 2
    SPEAKER_ONLY = 3

    @property
    def wire_name(self) -> str:
        """The name the protocol uses (``full``, ``fewer_frames``, ...)."""
        return self.name.lower()


LOWEST = Rung.SPEAKER_ONLY
"The last rung so far; the mix and audio-only would follow it."
_CAMERA_LAYERS = {Rung.FULL: 3, Rung.FEWER_FRAMES: 1, Rung.FEWEST_FRAMES: 0}


@dataclass(frozen=True, slots=True)
class StreamRate:
    """One stream the subscriber receives, and what each of its temporal layers costs."""

    track_id: str
    "The forwarded track."
    participant_id: str
    "Whose it is."
    source: TrackSource
    "Camera streams may be thinned; microphone and content never are."
    layer_rates: tuple[float, ...]
    "Bits per second of temporal layers 0, 1, 2, 3 (a stream without layers has all in 0)."

    def rate(self, highest_temporal_id: int) -> float:
        """Bits per second with temporal layers up to ``highest_temporal_id``."""
        return sum(self.layer_rates[: highest_temporal_id + 1])


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """What one camera stream is to do at the chosen rung."""

    highest_temporal_id: int
    "Forward temporal layers up to this one (3: all)."
    paused: bool
    "Forward nothing of it."


class Ladder:
    """One subscriber's rung, with hysteresis going back up."""

    __slots__ = ("_fits_since", "_hold", "_stepped_down_at", "_stepped_up_at", "rung")

    def __init__(self) -> None:
        self.rung = Rung.FULL
        "The rung in force."
        self._fits_since: float | None = None
        self._stepped_down_at = float("-inf")
        self._stepped_up_at = float("-inf")
        self._hold = UP_HOLD_SECONDS

    def decide(
        self,
        now: float,
        estimate: int | None,
        streams: Sequence[StreamRate],
        speaker: str | None,
    ) -> Rung:
        """The rung for now, given the estimate (None: unknown, so everything) and the streams."""
        if estimate is None:
            self.rung, self._fits_since = Rung.FULL, None
            return self.rung
        budget = estimate * HEADROOM
        if need(self.rung, streams, speaker) > budget:
            lower = next(
                (r for r in Rung if r > self.rung and need(r, streams, speaker) <= budget), LOWEST
            )
            if lower != self.rung:
                if now - self._stepped_up_at < FAILED_CLIMB_SECONDS:
                    self._hold = min(self._hold * 2, MAX_HOLD_SECONDS)
                self.rung = lower
                self._stepped_down_at = now
            self._fits_since = None
            return self.rung
        if now - max(self._stepped_up_at, self._stepped_down_at) > MAX_HOLD_SECONDS:
            self._hold = UP_HOLD_SECONDS  # a minute without a move: the link has settled
        if self.rung == Rung.FULL:
            return self.rung
        above = Rung(self.rung - 1)
        if need(above, streams, speaker) > estimate * UP_HEADROOM:
            self._fits_since = None
            return self.rung
        if self._fits_since is None:
            self._fits_since = now
        if now - max(self._fits_since, self._stepped_down_at) >= self._hold:
            self.rung, self._fits_since = above, None
            self._stepped_up_at = now
        return self.rung

    @staticmethod
    def plan(
        rung: Rung, streams: Sequence[StreamRate], speaker: str | None, estimate: int | None
    ) -> dict[str, StreamPlan]:
        """What each camera stream does at ``rung`` (other streams are never in the plan)."""
        cameras = [s for s in streams if s.source is TrackSource.CAMERA]
        if rung != Rung.SPEAKER_ONLY:
            layers = _CAMERA_LAYERS[rung]
            return {s.track_id: StreamPlan(layers, False) for s in cameras}
        shown = _speaker_camera(cameras, speaker)
        plans = {s.track_id: StreamPlan(0, True) for s in cameras}
        if shown is not None:
            spare = (estimate or 0) * HEADROOM - sum(
                s.rate(3) for s in streams if s.source is not TrackSource.CAMERA
            )
            layers = next((t for t in (3, 1) if shown.rate(t) <= spare), 0)
            plans[shown.track_id] = StreamPlan(layers, False)
        return plans


def need(rung: Rung, streams: Sequence[StreamRate], speaker: str | None) -> float:
    """Bits per second the subscriber receives at ``rung``."""
    total = 0.0
    cameras = []
    for stream in streams:
        if stream.source is TrackSource.CAMERA:
            cameras.append(stream)
        else:
            total += stream.rate(3)
    if rung == Rung.SPEAKER_ONLY:
        shown = _speaker_camera(cameras, speaker)
        return total + (shown.rate(0) if shown is not None else 0.0)
    layers = _CAMERA_LAYERS[rung]
    return total + sum(s.rate(layers) for s in cameras)


def _speaker_camera(cameras: Sequence[StreamRate], speaker: str | None) -> StreamRate | None:
    # The speaker's camera; nobody detected yet (or without a camera): the first camera, so the
    # subscriber still sees someone.
    first = cameras[0] if cameras else None
    return next((s for s in cameras if s.participant_id == speaker), first)
