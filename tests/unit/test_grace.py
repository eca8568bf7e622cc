"""The reconnect grace period's bookkeeping, with time as data."""

from __future__ import annotations

import pytest

from mcu.signaling.rooms.grace import MAX_GRACE_SECONDS, Absences


def test_an_absence_runs_out_after_the_grace_period() -> None:
    absences = Absences(30.0)
    assert absences.begin("p1", now=100.0) == 130.0
    assert absences.is_away("p1") and absences.remaining("p1", 110.0) == 20.0
    assert absences.next_deadline() == 130.0
    assert absences.expired(129.9) == []
    assert absences.expired(130.0) == ["p1"]
    assert not absences.is_away("p1") and absences.next_deadline() is None
    assert absences.expired(1000.0) == []  # gone once, not again


def test_coming_back_in_time_ends_the_absence() -> None:
    absences = Absences(30.0)
    absences.begin("p1", now=0.0)
    assert absences.end("p1") is True
    assert absences.end("p1") is False  # was no longer away
    assert absences.expired(31.0) == [] and absences.remaining("p1", 5.0) is None


def test_a_second_loss_keeps_the_first_deadline() -> None:
    # A resume that fails half-way (the link drops again) must not extend the wait for ever.
    absences = Absences(30.0)
    absences.begin("p1", now=0.0)
    assert absences.begin("p1", now=20.0) == 30.0
    assert absences.remaining("p1", 29.0) == 1.0 and absences.remaining("p1", 40.0) == 0.0


def test_several_absences_expire_in_deadline_order() -> None:
    absences = Absences(10.0)
    absences.begin("late", now=5.0)
    absences.begin("early", now=1.0)
    absences.begin("later", now=9.0)
    assert absences.next_deadline() == 11.0 and len(absences) == 3
    assert absences.expired(15.0) == ["early", "late"]
    assert absences.next_deadline() == 19.0 and len(absences) == 1


def test_zero_grace_is_disabled_and_bounds_are_checked() -> None:
    assert not Absences(0.0).enabled and Absences(0.5).enabled
    for bad in (-1.0, MAX_GRACE_SECONDS + 1):
        with pytest.raises(ValueError, match="grace must be between"):
            Absences(bad)
