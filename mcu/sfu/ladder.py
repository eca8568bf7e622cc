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
``mixed``             the server's single picture (content in it) at the highest of the mix's
                      bitrates that fits, and its sound
``audio_content``     no camera at all; audio whole, content at its base layer
====================  ======================================================================

The ``mixed`` rung is the room's to apply (it switches the subscription to the mix, which
renegotiates it); here it is a bitrate chosen from :class:`MixOffer`. Without one (an
end-to-end encrypted room: nothing to mix) the ladder goes from ``speaker_only`` straight to
``audio_content``; a subscriber that asked for the mix itself starts at ``mixed``.

A rung fits when what it needs (the streams' measured rates per temporal layer) is at most
:data:`HEADROOM` of the estimate. Going down is immediate, to the best rung that fits. Going up
is one rung at a time, when the rung above needs at most :data:`UP_HEADROOM` of the estimate and
has done so for :data:`UP_HOLD_SECONDS` (and that long after the last step down): stepping up
and back costs the subscriber a keyframe wait each time, so a climb followed at once by a step
down doubles the next hold (:data:`FAILED_CLIMB_SECONDS`). A move into or out of the mix
renegotiates the subscription, so two such moves are at least :data:`UP_HOLD_SECONDS` apart
(going down meanwhile, the ladder takes what pausing cameras can do). Pure: the clock is passed
in.
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
    "NO_MIX",
    "UP_HEADROOM",
    "UP_HOLD_SECONDS",
    "Ladder",
    "MixOffer",
    "Rung",
    "StreamPlan",
    "StreamRate",
    "need",
]

HEADROOM = 0.85
"""Share of the estimate media may fill: the rest is for retransmissions, RTCP and bursts."""
UP_HEADROOM = 0.7
"""Share of the estimate the rung above may need before the ladder climbs to it."""
UP_HOLD_SECONDS = 5.0
"""How long the rung above must keep fitting before climbing (and the wait after a step down).
Also the least time between two moves into or out of the mix: each renegotiates the
subscription and makes the subscriber wait for keyframes."""
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
    MIXED = 4
    AUDIO_CONTENT = 5

    @property
    def wire_name(self) -> str:
        """The name the protocol uses (``full``, ``fewer_frames``, ...)."""
        return self.name.lower()


LOWEST = Rung.AUDIO_CONTENT
"The last rung: a subscriber short even there is reported as ``short``."
_CAMERA_LAYERS = {Rung.FULL: 3, Rung.FEWER_FRAMES: 1, Rung.FEWEST_FRAMES: 0}


@dataclass(frozen=True, slots=True)
class MixOffer:
    """Whether the room's single-picture mix is a rung for this subscriber, and at what rates."""

    bitrates: tuple[int, ...] = ()
    "The bitrates the mix can run at, ascending; none: no mix (an end-to-end encrypted room)."
    chosen: bool = False
    """The subscriber asked for the mix itself (at ``bitrates``' one rate): its ladder is only
    the mix and audio + content."""

    @property
    def top(self) -> Rung:
        """The rung with everything this subscriber asked for."""
        return Rung.MIXED if self.chosen and self.bitrates else Rung.FULL

    def rungs(self) -> tuple[Rung, ...]:
        """The rungs open to this subscriber, top first."""
        return tuple(r for r in Rung if r >= self.top and (r != Rung.MIXED or self.bitrates))


NO_MIX = MixOffer()
"No mix: the forwarded rungs and audio + content."


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
    """What one camera or content stream is to do at the chosen rung."""

    highest_temporal_id: int
    "Forward temporal layers up to this one (3: all)."
    paused: bool
    "Forward nothing of it."


class Ladder:
    """One subscriber's rung, with hysteresis going back up."""

    __slots__ = (
        "_fits_since",
        "_hold",
        "_offer",
        "_restarted",
        "_stepped_down_at",
        "_stepped_up_at",
        "_switched_at",
        "mix_bitrate",
        "rung",
    )

    def __init__(self) -> None:
        self.rung = Rung.FULL
        "The rung in force."
        self.mix_bitrate: int | None = None
        "The mix's bitrate while the rung is ``mixed``."
        self._offer: MixOffer | None = None
        self._restarted = False
        self._fits_since: float | None = None
        self._stepped_down_at = float("-inf")
        self._stepped_up_at = float("-inf")
        self._switched_at = float("-inf")
        self._hold = UP_HOLD_SECONDS

    def restart(self) -> None:
        """The subscriber chose what it receives (forwarded or the mix) itself: its choice
        wins, so the next decision starts again from the top of it."""
        self._offer = None
        self._restarted = True

    def decide(
        self,
        now: float,
        estimate: int | None,
        streams: Sequence[StreamRate],
        speaker: str | None,
        mix: MixOffer = NO_MIX,
    ) -> Rung:
        """The rung for now, given the estimate (None: unknown, so everything) and the streams."""
        if mix != self._offer:
            kept = self._offer is not None and self._offer.chosen == mix.chosen
            self._start(now, mix, keep=kept)
        if estimate is None:
            self._set(mix.top, mix.bitrates[0] if mix.top == Rung.MIXED else None)
            self._fits_since = None
            return self.rung
        budget = estimate * HEADROOM
        rungs = mix.rungs()
        current = need(self.rung, streams, speaker, self.mix_bitrate or 0)
        if self.rung == Rung.MIXED:
            # What the mix really sends once it is carried: an encoder may overshoot its target.
            current = max(current, sum(s.rate(3) for s in streams))
        if current > budget:
            self._step_down(now, budget, streams, speaker, mix)
            self._fits_since = None
            return self.rung
        if now - max(self._stepped_up_at, self._stepped_down_at) > MAX_HOLD_SECONDS:
            self._hold = UP_HOLD_SECONDS  # a minute without a move: the link has settled
        if self._stepped_down_at < self._stepped_up_at <= now - FAILED_CLIMB_SECONDS:
            # The last climb held: the link has room again, and the next rungs need not wait
            # the longer holds of the failed climbs before it (a line that came back climbed
            # one rung a minute).
            self._hold = UP_HOLD_SECONDS
        place = rungs.index(self.rung)
        if place == 0:
            return self.rung
        above = rungs[place - 1]
        # Climbing into the mix probes with its lowest rate: below it nothing more was carried.
        bitrate = mix.bitrates[0] if above == Rung.MIXED else None
        if need(above, streams, speaker, bitrate or 0) > estimate * UP_HEADROOM:
            self._fits_since = None
            return self.rung
        if self._fits_since is None:
            self._fits_since = now
        since = max(self._fits_since, self._stepped_down_at)
        if _renegotiates(self.rung, above):
            since = max(since, self._switched_at)
        if now - since >= self._hold:
            self._move(now, above, bitrate)
            self._fits_since = None
            self._stepped_up_at = now
        return self.rung

    def _start(self, now: float, mix: MixOffer, *, keep: bool) -> None:
        # What the subscriber may get changed. Within one mode (its own mix's rate, end-to-end
        # encryption) the rung stays if it is still open; a change of mode (its own choice, the
        # room's default) starts from the top of the new one. Its subscription was just
        # renegotiated, which the hold counts as a switch.
        if self._offer is not None or self._restarted:
            self._switched_at = now
        self._offer, self._restarted = mix, False
        self._fits_since = None
        if keep and self.rung in mix.rungs():
            if self.rung == Rung.MIXED and mix.chosen:
                self.mix_bitrate = mix.bitrates[0]
            return
        self._set(mix.top, mix.bitrates[0] if mix.top == Rung.MIXED else None)

    def _step_down(
        self,
        now: float,
        budget: float,
        streams: Sequence[StreamRate],
        speaker: str | None,
        mix: MixOffer,
    ) -> None:
        below = [r for r in mix.rungs() if r > self.rung]
        if now - self._switched_at < UP_HOLD_SECONDS:
            below = [r for r in below if not _renegotiates(self.rung, r)]
        if not below:
            return  # in the mix, renegotiated moments ago: wait for it to show what it carries
        audio = _mix_audio(streams)
        target, bitrate = below[-1], None
        for rung in below:
            if rung == Rung.MIXED:
                fitting = [b for b in mix.bitrates if b + audio <= budget]
                if fitting:
                    target, bitrate = rung, fitting[-1]
                    break
            elif need(rung, streams, speaker) <= budget:
                target = rung
                break
        if now - self._stepped_up_at < FAILED_CLIMB_SECONDS:
            self._hold = min(self._hold * 2, MAX_HOLD_SECONDS)
        self._move(now, target, bitrate)
        self._stepped_down_at = now

    def _move(self, now: float, rung: Rung, bitrate: int | None) -> None:
        if _renegotiates(self.rung, rung):
            self._switched_at = now
        self._set(rung, bitrate)

    def _set(self, rung: Rung, bitrate: int | None) -> None:
        self.rung = rung
        self.mix_bitrate = bitrate if rung == Rung.MIXED else None

    @staticmethod
    def plan(
        rung: Rung, streams: Sequence[StreamRate], speaker: str | None, estimate: int | None
    ) -> dict[str, StreamPlan]:
        """What each camera and content stream does at ``rung`` (microphones are never in the
        plan; at ``mixed`` nothing is: the streams carried are the mix's, sent whole)."""
        if rung == Rung.MIXED:
            return {}
        content_layers = 0 if rung == Rung.AUDIO_CONTENT else 3
        plans = {
            s.track_id: StreamPlan(content_layers, False)
            for s in streams
            if s.source is TrackSource.CONTENT
        }
        cameras = [s for s in streams if s.source is TrackSource.CAMERA]
        if rung == Rung.AUDIO_CONTENT:
            plans.update((s.track_id, StreamPlan(0, True)) for s in cameras)
            return plans
        if rung != Rung.SPEAKER_ONLY:
            layers = _CAMERA_LAYERS[rung]
            plans.update((s.track_id, StreamPlan(layers, False)) for s in cameras)
            return plans
        shown = _speaker_camera(cameras, speaker)
        plans.update((s.track_id, StreamPlan(0, True)) for s in cameras)
        if shown is not None:
            spare = (estimate or 0) * HEADROOM - sum(
                s.rate(3) for s in streams if s.source is not TrackSource.CAMERA
            )
            layers = next((t for t in (3, 1) if shown.rate(t) <= spare), 0)
            plans[shown.track_id] = StreamPlan(layers, False)
        return plans


def need(
    rung: Rung, streams: Sequence[StreamRate], speaker: str | None, mix_bitrate: int = 0
) -> float:
    """Bits per second the subscriber receives at ``rung`` (at ``mixed``: the mix at
    ``mix_bitrate`` and its sound; the picture carries the content)."""
    if rung == Rung.MIXED:
        return mix_bitrate + _mix_audio(streams)
    total = 0.0
    cameras = []
    for stream in streams:
        if stream.source is TrackSource.CAMERA:
            cameras.append(stream)
        elif stream.source is TrackSource.CONTENT and rung == Rung.AUDIO_CONTENT:
            total += stream.rate(0)
        else:
            total += stream.rate(3)
    if rung == Rung.AUDIO_CONTENT:
        return total
    if rung == Rung.SPEAKER_ONLY:
        shown = _speaker_camera(cameras, speaker)
        return total + (shown.rate(0) if shown is not None else 0.0)
    layers = _CAMERA_LAYERS[rung]
    return total + sum(s.rate(layers) for s in cameras)


def _mix_audio(streams: Sequence[StreamRate]) -> float:
    # The mix's sound is one Opus stream, as one voice is: the largest microphone stream (or,
    # while the mix is carried, its own sound).
    return max((s.rate(3) for s in streams if s.source is TrackSource.MICROPHONE), default=0.0)


def _renegotiates(before: Rung, after: Rung) -> bool:
    """Whether a move between the rungs switches the subscription between forwarded and mixed."""
    return (before == Rung.MIXED) != (after == Rung.MIXED)


def _speaker_camera(cameras: Sequence[StreamRate], speaker: str | None) -> StreamRate | None:
    # The speaker's camera; nobody detected yet (or without a camera): the first camera, so the
    # subscriber still sees someone.
    first = cameras[0] if cameras else None
    return next((s for s in cameras if s.participant_id == speaker), first)
