"""The downlink estimate and the ladder's decisions, pure, with time passed in."""

from __future__ import annotations

from mcu.media import TrackSource
from mcu.sfu.estimate import RISE_SECONDS, DownlinkEstimate
from mcu.sfu.ladder import (
    FAILED_CLIMB_SECONDS,
    NO_MIX,
    UP_HOLD_SECONDS,
    Ladder,
    MixOffer,
    Rung,
    StreamPlan,
    StreamRate,
    need,
)

MIC, CAM, CONTENT = TrackSource.MICROPHONE, TrackSource.CAMERA, TrackSource.CONTENT


def room(cameras: int = 5) -> list[StreamRate]:
    """Five publishers as measured: VP8 640x360 ~1.1 Mbit/s in three layers (the base layer the
    largest: its frames carry the most change), Opus ~40 kbit/s; one shares slides."""
    streams = [
        StreamRate(f"c{i}", f"p{i}", CAM, (500e3, 300e3, 300e3, 0.0)) for i in range(cameras)
    ]
    streams += [StreamRate(f"m{i}", f"p{i}", MIC, (40e3, 0, 0, 0)) for i in range(cameras)]
    streams.append(StreamRate("s", "p0", CONTENT, (200e3, 0, 0, 0)))
    return streams


def test_estimate_follows_remb_down_at_once_and_up_slowly() -> None:
    estimate = DownlinkEstimate()
    assert estimate.bitrate is None  # nothing reported: no estimate, nothing thinned
    estimate.on_remb(7_000_000, now=0.0)
    assert estimate.bitrate == 7_000_000
    estimate.on_remb(2_000_000, now=1.0)
    estimate.on_remb(2_000_000, now=1.0)  # the same REMB through another stream of the link
    assert estimate.bitrate == 2_000_000
    estimate.on_remb(6_000_000, now=1.0 + RISE_SECONDS / 4)
    assert estimate.bitrate == 3_000_000  # a quarter of the way in a quarter of the time
    estimate.on_remb(6_000_000, now=1.0 + RISE_SECONDS / 4)  # a duplicate adds nothing
    assert estimate.bitrate == 3_000_000
    estimate.on_remb(6_000_000, now=10.0)
    assert estimate.bitrate == 6_000_000


def test_estimate_is_cut_by_high_loss_only() -> None:
    estimate = DownlinkEstimate()
    estimate.on_remb(2_000_000, now=0.0)
    for _ in range(10):
        estimate.on_loss(8)  # 3 %: NACK repairs it
    assert estimate.bitrate == 2_000_000
    for _ in range(20):
        estimate.on_loss(77)  # 30 %
    assert 0.29 < estimate.loss < 0.31
    assert estimate.bitrate is not None and 1_680_000 < estimate.bitrate < 1_720_000
    estimate.on_loss(1000)  # a value off the wire's range is clamped
    assert estimate.loss <= 1.0


def test_rung_needs_shrink_down_the_ladder_and_spare_audio_and_content() -> None:
    streams = room()
    full, fewer, fewest, speaker, mixed, audio = (need(r, streams, "p1", 500_000) for r in Rung)
    assert full == 5 * 1.1e6 + 5 * 40e3 + 200e3
    assert fewer == 5 * 0.8e6 + 5 * 40e3 + 200e3
    assert fewest == 5 * 0.5e6 + 5 * 40e3 + 200e3
    assert speaker == 0.5e6 + 5 * 40e3 + 200e3
    assert mixed == 500e3 + 40e3  # the picture carries the content; one voice's worth of sound
    assert audio == 5 * 40e3 + 200e3


def test_no_estimate_means_everything() -> None:
    ladder = Ladder()
    assert ladder.decide(0.0, None, room(), None) is Rung.FULL


def test_steps_down_at_once_to_the_best_rung_that_fits() -> None:
    streams = room()
    ladder = Ladder()
    assert ladder.decide(0.0, 8_000_000, streams, "p1") is Rung.FULL
    # The township site: 2 Mbit/s. Even the base layers (2.9 Mbit/s) do not fit.
    assert ladder.decide(1.0, 2_000_000, streams, "p1") is Rung.SPEAKER_ONLY
    plan = Ladder.plan(Rung.SPEAKER_ONLY, streams, "p1", 2_000_000)
    assert plan["c1"] == StreamPlan(3, False)  # 1.1 + 0.4 <= 1.7: the speaker at full rate
    assert all(plan[f"c{i}"].paused for i in (0, 2, 3, 4))
    assert "m1" not in plan  # audio is never in a plan
    assert plan["s"] == StreamPlan(3, False)  # content whole
    # A 4.5 Mbit/s county line (3.8 Mbit/s for media): two layers of each camera (4.4 Mbit/s)
    # do not fit, the base layers (2.9 Mbit/s) do.
    ladder = Ladder()
    assert ladder.decide(0.0, 4_500_000, streams, "p1") is Rung.FEWEST_FRAMES
    assert Ladder.plan(Rung.FEWEST_FRAMES, streams, "p1", 4_500_000)["c3"] == StreamPlan(0, False)


def test_climbs_back_one_rung_at_a_time_after_holding() -> None:
    streams = room()
    ladder = Ladder()
    ladder.decide(0.0, 2_000_000, streams, "p1")
    assert ladder.rung is Rung.SPEAKER_ONLY
    # The shaping is lifted: 10 Mbit/s. Nothing moves before the hold.
    t = 1.0
    assert ladder.decide(t, 10_000_000, streams, "p1") is Rung.SPEAKER_ONLY
    t += UP_HOLD_SECONDS
    assert ladder.decide(t, 10_000_000, streams, "p1") is Rung.FEWEST_FRAMES
    assert ladder.decide(t + 1, 10_000_000, streams, "p1") is Rung.FEWEST_FRAMES
    t += UP_HOLD_SECONDS
    assert ladder.decide(t, 10_000_000, streams, "p1") is Rung.FEWEST_FRAMES  # hold restarted
    t += 1
    assert ladder.decide(t, 10_000_000, streams, "p1") is Rung.FEWER_FRAMES
    t += UP_HOLD_SECONDS + 1
    ladder.decide(t, 10_000_000, streams, "p1")
    t += UP_HOLD_SECONDS + 1
    assert ladder.decide(t, 10_000_000, streams, "p1") is Rung.FULL


def test_does_not_climb_into_a_rung_that_barely_fits() -> None:
    streams = room()
    ladder = Ladder()
    ladder.decide(0.0, 4_500_000, streams, "p1")
    assert ladder.rung is Rung.FEWEST_FRAMES
    # 5.5 Mbit/s: two layers (4.4 Mbit/s) fit within 85 %, but not within the 70 % to climb.
    for t in range(1, 30):
        assert ladder.decide(float(t), 5_500_000, streams, "p1") is Rung.FEWEST_FRAMES


def test_a_dip_restarts_the_hold() -> None:
    streams = room()
    ladder = Ladder()
    ladder.decide(0.0, 4_500_000, streams, "p1")
    ladder.decide(1.0, 10_000_000, streams, "p1")
    ladder.decide(3.0, 5_500_000, streams, "p1")  # fits, but not enough to climb
    ladder.decide(4.0, 10_000_000, streams, "p1")
    assert ladder.decide(1.0 + UP_HOLD_SECONDS + 0.5, 10_000_000, streams, "p1") is (
        Rung.FEWEST_FRAMES
    )
    assert ladder.decide(4.0 + UP_HOLD_SECONDS, 10_000_000, streams, "p1") is Rung.FEWER_FRAMES


def test_speaker_only_without_a_detected_speaker_shows_the_first_camera() -> None:
    plan = Ladder.plan(Rung.SPEAKER_ONLY, room(), None, 1_000_000)
    assert plan["c0"] == StreamPlan(0, False)  # 0.5 fits in what audio and content leave
    assert all(plan[f"c{i}"].paused for i in range(1, 5))


def test_a_climb_that_does_not_fit_makes_the_next_wait_longer() -> None:
    streams = room()
    ladder = Ladder()
    ladder.decide(0.0, 4_500_000, streams, "p1")
    assert ladder.rung is Rung.FEWEST_FRAMES
    ladder.decide(1.0, 10_000_000, streams, "p1")  # the link clears
    t = 1.0 + UP_HOLD_SECONDS
    assert ladder.decide(t, 10_000_000, streams, "p1") is Rung.FEWER_FRAMES  # a climb...
    t += 2
    assert ladder.decide(t, 4_500_000, streams, "p1") is Rung.FEWEST_FRAMES  # ...that failed
    ladder.decide(t + 1, 10_000_000, streams, "p1")  # clear again from t + 1
    # The next climb waits twice as long.
    assert ladder.decide(t + 1 + UP_HOLD_SECONDS, 10_000_000, streams, "p1") is (Rung.FEWEST_FRAMES)
    assert ladder.decide(t + 1 + 2 * UP_HOLD_SECONDS, 10_000_000, streams, "p1") is (
        Rung.FEWER_FRAMES
    )
    # That climb held: the next rung waits the short hold again, not the doubled one.
    t += 1 + 2 * UP_HOLD_SECONDS + FAILED_CLIMB_SECONDS
    assert ladder.decide(t, 10_000_000, streams, "p1") is Rung.FEWER_FRAMES
    assert ladder.decide(t + UP_HOLD_SECONDS, 10_000_000, streams, "p1") is Rung.FULL


# The mixer's bitrates (mcu.mixer.specs.BITRATE_LADDER), as the room offers them.
MIX = MixOffer((250_000, 375_000, 500_000, 750_000, 1_000_000, 1_500_000))


def test_every_rung_is_reached_as_the_estimate_falls() -> None:
    streams = room()
    # The five-camera room: the speaker only needs 0.9 Mbit/s, the mix 0.29-1.54 Mbit/s,
    # audio and content 0.4 Mbit/s (five voices; the mix sends one).
    expected = [
        (20_000_000, Rung.FULL, None),
        (6_000_000, Rung.FEWER_FRAMES, None),  # 5.1 for media: two layers (4.4) fit
        (4_500_000, Rung.FEWEST_FRAMES, None),
        (2_000_000, Rung.SPEAKER_ONLY, None),
        (1_000_000, Rung.MIXED, 750_000),  # 0.85: 0.75 + 0.04 fits, 1.0 + 0.04 does not
        (500_000, Rung.MIXED, 375_000),
        (300_000, Rung.AUDIO_CONTENT, None),  # 0.255: not even the mix's lowest 0.29
    ]
    for estimate, rung, bitrate in expected:
        ladder = Ladder()
        assert ladder.decide(0.0, estimate, streams, "p1", MIX) is rung, estimate
        assert ladder.mix_bitrate == bitrate


def test_down_at_once_into_the_mix_and_on_to_audio_and_content() -> None:
    streams = room()
    ladder = Ladder()
    ladder.decide(0.0, 20_000_000, streams, "p1", MIX)
    t = 10.0  # the subscription settled long ago
    assert ladder.decide(t, 700_000, streams, "p1", MIX) is Rung.MIXED  # past four rungs
    assert ladder.mix_bitrate == 500_000  # 0.595 for media: 0.5 + 0.04
    # It gets worse at once, but the subscription was switched to the mix this instant: a
    # second renegotiation waits the hold.
    assert ladder.decide(t + 1, 300_000, streams, "p1", MIX) is Rung.MIXED
    assert ladder.decide(t + UP_HOLD_SECONDS, 300_000, streams, "p1", MIX) is Rung.AUDIO_CONTENT
    assert ladder.mix_bitrate is None
    plan = Ladder.plan(Rung.AUDIO_CONTENT, streams, "p1", 300_000)
    assert all(plan[f"c{i}"].paused for i in range(5))
    assert plan["s"] == StreamPlan(0, False)  # content kept, at its base layer if it has one
    assert "m0" not in plan
    assert Ladder.plan(Rung.MIXED, streams, "p1", 700_000) == {}  # the mix is sent whole


def test_climbs_back_through_the_mix_one_rung_per_hold() -> None:
    streams = room()
    ladder = Ladder()
    assert ladder.decide(0.0, 300_000, streams, "p1", MIX) is Rung.AUDIO_CONTENT
    t = 1.0
    assert ladder.decide(t, 10_000_000, streams, "p1", MIX) is Rung.AUDIO_CONTENT
    t += UP_HOLD_SECONDS
    assert ladder.decide(t, 10_000_000, streams, "p1", MIX) is Rung.MIXED
    assert ladder.mix_bitrate == 250_000  # the probe starts at the mix's lowest rate
    climbed = [ladder.decide(t + s, 10_000_000, streams, "p1", MIX) for s in range(1, 30)]
    # One rung per hold (a tick to start each hold): never two in one step.
    order = [Rung.SPEAKER_ONLY, Rung.FEWEST_FRAMES, Rung.FEWER_FRAMES, Rung.FULL]
    assert [r for i, r in enumerate(climbed) if i == 0 or climbed[i - 1] != r][1:] == order
    assert climbed.index(Rung.SPEAKER_ONLY) >= UP_HOLD_SECONDS - 1


def test_in_an_encrypted_room_the_mix_is_skipped_both_ways() -> None:
    streams = room()
    ladder = Ladder()
    ladder.decide(0.0, 20_000_000, streams, "p1", NO_MIX)
    # The mix would fit at 0.75 Mbit/s, but there is none: audio and content.
    assert ladder.decide(1.0, 1_000_000, streams, "p1", NO_MIX) is Rung.AUDIO_CONTENT
    ladder.decide(2.0, 10_000_000, streams, "p1", NO_MIX)
    assert ladder.decide(2.0 + UP_HOLD_SECONDS, 10_000_000, streams, "p1", NO_MIX) is (
        Rung.SPEAKER_ONLY
    )


def test_a_climb_out_of_the_mix_is_not_undone_by_another_switch_within_the_hold() -> None:
    streams = room()
    ladder = Ladder()
    ladder.decide(0.0, 1_000_000, streams, "p1", MIX)
    assert ladder.rung is Rung.MIXED
    t = 1.0 + UP_HOLD_SECONDS
    ladder.decide(1.0, 10_000_000, streams, "p1", MIX)
    assert ladder.decide(t, 10_000_000, streams, "p1", MIX) is Rung.SPEAKER_ONLY
    # Back to 1 Mbit/s two seconds later: the mix fits, but the subscription was switched out
    # of it two seconds ago; pausing the speaker's camera is what can be done now.
    assert ladder.decide(t + 2, 1_000_000, streams, "p1", MIX) is Rung.AUDIO_CONTENT


def test_a_subscriber_that_chose_the_mix_only_moves_between_it_and_audio_and_content() -> None:
    streams = [StreamRate("x", "mix", CAM, (1_000_000, 0, 0, 0))]
    streams.append(StreamRate("y", "mix", MIC, (40e3, 0, 0, 0)))
    own = MixOffer((1_000_000,), chosen=True)
    ladder = Ladder()
    ladder.decide(0.0, None, room(), "p1", MIX)  # forwarded at first
    t = 10.0
    assert ladder.decide(t, None, streams, "p1", own) is Rung.MIXED  # then it asks for the mix
    assert ladder.mix_bitrate == 1_000_000
    # Short: the mix it chose renegotiated just now, so the step to audio waits the hold.
    assert ladder.decide(t + 1, 600_000, streams, "p1", own) is Rung.MIXED
    t += UP_HOLD_SECONDS
    assert ladder.decide(t, 600_000, streams, "p1", own) is Rung.AUDIO_CONTENT
    rungs = {ladder.decide(t + s, 50_000_000, streams, "p1", own) for s in range(1, 60)}
    assert rungs == {Rung.AUDIO_CONTENT, Rung.MIXED}
    assert ladder.rung is Rung.MIXED and ladder.mix_bitrate == 1_000_000


def test_the_subscribers_own_choice_starts_the_ladder_again() -> None:
    streams = room()
    ladder = Ladder()
    ladder.decide(0.0, 300_000, streams, "p1", MIX)
    assert ladder.rung is Rung.AUDIO_CONTENT
    ladder.restart()  # it asked for forwarded streams itself
    assert ladder.decide(1.0, 20_000_000, streams, "p1", MIX) is Rung.FULL
    # It asks for the mix: the ladder's top is now the mix, whatever it had before.
    assert ladder.decide(2.0, 20_000_000, streams, "p1", MixOffer((500_000,), True)) is (Rung.MIXED)
    assert ladder.mix_bitrate == 500_000


def test_in_the_mix_what_it_really_sends_counts() -> None:
    # The mix asked for 250 kbit/s, but its encoder sends 600 (busy pictures overshoot): a link
    # that carries 500 is short on it, and goes on to audio and content after the hold.
    mixed = [StreamRate("x", "mix", CAM, (600e3, 0, 0, 0)), StreamRate("y", "mix", MIC, (40e3,))]
    ladder = Ladder()
    ladder.decide(0.0, 20_000_000, room(), "p1", MIX)
    assert ladder.decide(10.0, 400_000, room(), "p1", MIX) is Rung.MIXED
    assert ladder.mix_bitrate == 250_000
    assert ladder.decide(11.0, 500_000, mixed, "p1", MIX) is Rung.MIXED  # within the hold
    assert ladder.decide(10.0 + UP_HOLD_SECONDS, 500_000, mixed, "p1", MIX) is (Rung.AUDIO_CONTENT)
