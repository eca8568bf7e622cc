"""One subscriber's downlink: its estimate, its rung on the ladder, and the consumers told so.

The thin shell around the pure parts (:mod:`mcu.sfu.estimate`, :mod:`mcu.sfu.ladder`,
:mod:`mcu.sfu.layers`): the subscribe connection owns one, its consumers feed it the
subscriber's REMB and receiver reports, and the room calls :meth:`Downlink.adapt` on a tick with
the active speaker (and what the mix offers it); the rung chosen is applied to the camera and
content consumers at once. The ``mixed`` rung is not applied here: the room switches the
subscription to the mix when it sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mcu.media import TrackSource
from mcu.sfu.consumer import Consumer
from mcu.sfu.estimate import DownlinkEstimate
from mcu.sfu.ladder import HEADROOM, LOWEST, NO_MIX, Ladder, MixOffer, Rung, StreamRate, need
from mcu.sfu.producer import Producer

__all__ = [
    "CONGESTED_LOSS",
    "CONGESTED_TICKS",
    "QUEUEING_SHARE",
    "SETTLE_SECONDS",
    "SWITCH_UP_WAIT",
    "Downlink",
    "LinkState",
]

SWITCH_UP_WAIT = 2.0
"""Seconds a camera waits for a layer-sync frame to switch up at before asking for a keyframe."""
CONGESTED_LOSS = 0.05
"""Smoothed loss towards the subscriber above which its link may be too thin for what it is
sent. Below it, NACK repairs what is lost (mcu/sfu/repair.py) and nothing is thinned.

Why loss and not the REMB figure alone: a receiver's REMB is bounded by about 1.5 times what it
currently receives (Google congestion control's rate control), so it only ever shows room above
the rate it is sent. Thinning to fit it feeds back: less sent, a lower REMB, less sent, down to
the lowest rung on a clean line (measured: clean loopback rooms of Chromium pages fell to
``speaker_only`` at 68-245 kbit/s). A thin link's queue overflowing shows as loss; what then
reaches the subscriber (sent x (1 - loss)) is what the rungs are fitted to."""
QUEUEING_SHARE = 0.9
"""Loss alone does not make a link thin: a rural line drops packets at random whatever it is
sent, and thinning for that loses frames the link could carry. A link is too thin when its
loss is high *and* its queue grows, which the receiver's REMB shows (it is delay-based: while
the queue grows, Chromium's estimate falls to about 0.85 of what arrives, and otherwise it
stays above it). Loss over :data:`CONGESTED_LOSS` counts when the REMB is under this share of
what the subscriber is sent (or when it sends no REMB)."""
SETTLE_SECONDS = 3.0
"""After a step down, receiver reports still speak of the rate before it (they are smoothed and
come about once a second per stream): for this long the link is not fitted again, so one
congestion episode is one step, not a slide down the ladder on the lagging loss figure."""
CONGESTED_TICKS = 2
"""Ticks in a row a link must look congested before it is thinned: one alone is often a
receiver's passing hiccup (measured: a clinic on a clean 10 Mbit/s line with 5 % random loss,
its browser busy decoding five cameras, was thinned once in 13 s on a single tick's REMB dip)."""
_HOLD = -1
"The fitting estimate that keeps the rung as it is for this tick."
_UNBOUNDED = 1 << 40
"The estimate the ladder climbs with while the link loses nothing: any rung fits."


@dataclass(frozen=True, slots=True)
class LinkState:
    """What a subscriber's link carries and what it is sent, after one tick."""

    estimate: int | None
    "Bits per second (None: the subscriber reports nothing to estimate from)."
    rung: Rung
    "What it receives."
    short: bool
    "Even the lowest rung (audio and content) needs more than the estimate."
    mix_bitrate: int | None = None
    "At the ``mixed`` rung: the bitrate of the mix that fits."

    def describe(self) -> dict[str, object]:
        """The protocol's ``link`` fields."""
        return {"estimate_bps": self.estimate, "rung": self.rung.wire_name, "short": self.short}


class Downlink:
    """The estimate and the ladder of one subscribe connection."""

    def __init__(self) -> None:
        self.estimate = DownlinkEstimate()
        "Fed by the connection's consumers from the subscriber's RTCP."
        self.ladder = Ladder()
        self.state = LinkState(None, Rung.FULL, False)
        "As of the last tick."
        self._sent_bytes: int | None = None
        self._sent_at = 0.0
        self._fitted: tuple[int, float] | None = None
        "The estimate fitted when the link was last found congested, and when."
        self._congested_ticks = 0
        self._estimate: int | None = None
        "The estimate of the last tick that decided."
        self._shown_speaker: str | None = None
        "The last active speaker whose camera this subscriber receives."

    def adapt(
        self,
        now: float,
        carried: Sequence[tuple[Producer, Consumer]],
        speaker: str | None,
        mix: MixOffer = NO_MIX,
    ) -> LinkState:
        """Choose the rung for now and apply it to the camera and content consumers; returns
        the state."""
        streams = [
            StreamRate(p.track_id, p.participant_id, p.source, p.layer_rates(now))
            for p, _ in carried
        ]
        speaker = self._speaker_to_show(speaker, streams)
        sent = self._sent_rate(now, carried)
        estimate = self._fitting_estimate(now, sent)
        if estimate == _HOLD:  # one congested tick: neither down nor up yet
            estimate, rung = self._estimate, self.ladder.rung
        else:
            self._estimate = estimate
            rung = self.ladder.decide(now, estimate, streams, speaker, mix)
        plans = Ladder.plan(rung, streams, speaker, estimate)
        for producer, consumer in carried:
            plan = plans.get(producer.track_id)
            if plan is None:
                continue
            if plan.paused:
                consumer.set_paused(True)
                continue
            if consumer.layers is not None:
                consumer.set_paused(False)
            if plan.highest_temporal_id < 3 or consumer.layers is not None:
                consumer.limit_layers(plan.highest_temporal_id)
            if consumer.layers is not None and consumer.layers.waiting_since is not None:
                # No layer-sync frame came to switch up at: a keyframe does it.
                if now - consumer.layers.waiting_since > SWITCH_UP_WAIT:
                    consumer.layers.waiting_since = now
                    consumer.ask_keyframe(now)
        short = (
            estimate is not None
            and rung == LOWEST
            and need(rung, streams, speaker) > estimate * HEADROOM
        )
        shown = estimate if estimate is not None and estimate < _UNBOUNDED else None
        bitrate = self.ladder.mix_bitrate
        self.state = LinkState(shown or self.estimate.bitrate, rung, short, bitrate)
        return self.state

    def admit(self, producer: Producer, consumer: Consumer) -> None:
        """A consumer starts on this connection. At ``audio_content`` a camera starts paused:
        the connection has just been renegotiated out of the mix, and every camera sending
        until the next tick would be a second of video the link cannot carry."""
        if self.ladder.rung == Rung.AUDIO_CONTENT and producer.source is TrackSource.CAMERA:
            consumer.set_paused(True)

    def _speaker_to_show(self, speaker: str | None, streams: Sequence[StreamRate]) -> str | None:
        """The speaker whose camera the speaker-only rung shows: while the active speaker is
        someone this subscriber receives no camera of (the subscriber itself, most often: a
        clinic whose doctor is talking), the one it was shown before, not another camera
        (each switch costs a keyframe wait and flickers the picture)."""
        cameras = {s.participant_id for s in streams if s.source is TrackSource.CAMERA}
        if speaker in cameras:
            self._shown_speaker = speaker
            return speaker
        return self._shown_speaker if self._shown_speaker in cameras else speaker

    def _sent_rate(self, now: float, carried: Sequence[tuple[Producer, Consumer]]) -> float | None:
        """Bits per second of media sent to the subscriber since the last tick (None on the
        first, or when its consumers were replaced meanwhile)."""
        total = sum(consumer.bytes_sent for _, consumer in carried)
        before, then = self._sent_bytes, self._sent_at
        self._sent_bytes, self._sent_at = total, now
        if before is None or total < before or now <= then:
            return None
        return (total - before) * 8 / (now - then)

    def _fitting_estimate(self, now: float, sent: float | None) -> int | None:
        """What the ladder fits the rungs to (see :data:`CONGESTED_LOSS` and
        :data:`QUEUEING_SHARE`): nothing to fit (everything) or unbounded (climb back) while the
        link is not congested; what reaches the subscriber while it is, held for
        :data:`SETTLE_SECONDS` once fitted."""
        loss, remb = self.estimate.loss, self.estimate.remb
        congested = (
            sent is not None
            and loss > CONGESTED_LOSS
            and (remb is None or remb < QUEUEING_SHARE * sent)
        )
        if not congested:
            self._fitted, self._congested_ticks = None, 0
            return None if self.ladder.rung == Rung.FULL else _UNBOUNDED
        assert sent is not None
        self._congested_ticks += 1
        if self._congested_ticks < CONGESTED_TICKS:
            return _HOLD
        if self._fitted is not None and now - self._fitted[1] < SETTLE_SECONDS:
            return self._fitted[0]
        fitted = int(sent * (1.0 - loss))
        self._fitted = (fitted, now)
        return fitted
