"""When a slide track sends: a keyframe, quick follow-ups, then a slow refresh (time as data)."""

from __future__ import annotations

import pytest

from mcu.slides.slideschedule import FOLLOW_UP_GAPS, REFRESH_INTERVAL, SlideSchedule


def sends(schedule: SlideSchedule, start: float, frames: int) -> list[float]:
    """Send each frame the moment it is due; the times they went out."""
    times = []
    now = start
    for _ in range(frames):
        now += schedule.delay(now)
        schedule.sent(now, keyframe=False)
        times.append(now)
    return times


def test_a_new_schedule_is_due_at_once() -> None:
    assert SlideSchedule().delay(123.0) == 0.0


def test_a_keyframe_is_followed_quickly_then_the_refresh_slows_down() -> None:
    schedule = SlideSchedule()
    schedule.sent(10.0, keyframe=True)
    times = sends(schedule, 10.0, len(FOLLOW_UP_GAPS) + 3)
    gaps = [round(b - a, 6) for a, b in zip([10.0, *times], times, strict=False)]
    # The frame that lets a receiver show the keyframe comes well inside the refresh interval.
    assert gaps[0] <= 0.06
    assert gaps[: len(FOLLOW_UP_GAPS)] == list(FOLLOW_UP_GAPS)
    assert gaps[len(FOLLOW_UP_GAPS) :] == [REFRESH_INTERVAL] * 3


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (10.0, FOLLOW_UP_GAPS[0]),  # just sent
        (10.0 + FOLLOW_UP_GAPS[0] / 2, FOLLOW_UP_GAPS[0] / 2),
        (10.0 + FOLLOW_UP_GAPS[0], 0.0),  # due
        (10.0 + 5.0, 0.0),  # overdue: at once, never negative
    ],
)
def test_delay_counts_down_to_zero(now: float, expected: float) -> None:
    schedule = SlideSchedule()
    schedule.sent(10.0, keyframe=True)
    assert schedule.delay(now) == pytest.approx(expected)


def test_every_keyframe_starts_the_follow_ups_again() -> None:
    schedule = SlideSchedule()
    schedule.sent(0.0, keyframe=True)
    sends(schedule, 0.0, len(FOLLOW_UP_GAPS) + 2)  # idle: refreshing once a second
    schedule.sent(50.0, keyframe=True)  # a page turn, or a keyframe a late joiner asked for
    assert schedule.delay(50.0) == pytest.approx(FOLLOW_UP_GAPS[0])
    # A keyframe in the middle of a burst restarts it too.
    schedule.sent(50.04, keyframe=False)
    schedule.sent(50.05, keyframe=True)
    assert schedule.delay(50.05) == pytest.approx(FOLLOW_UP_GAPS[0])


def test_a_failed_encode_is_retried_at_the_refresh_pace() -> None:
    schedule = SlideSchedule()
    schedule.failed(7.0)
    assert schedule.delay(7.0) == pytest.approx(REFRESH_INTERVAL)


def test_an_idle_slide_costs_one_frame_a_second() -> None:
    """After a page's keyframe, a minute of an unchanged page is about sixty frames."""
    schedule = SlideSchedule()
    schedule.sent(0.0, keyframe=True)
    times = sends(schedule, 0.0, 200)
    in_a_minute = [t for t in times if t <= 60.0]
    assert len(in_a_minute) <= 60 / REFRESH_INTERVAL + len(FOLLOW_UP_GAPS)
    assert sum(FOLLOW_UP_GAPS) < REFRESH_INTERVAL
