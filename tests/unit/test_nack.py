"""NackRequester: which missing packets are asked for, and when (time passed in)."""

from __future__ import annotations

from mcu.sfu.nack import (
    DEFAULT_RETRY_INTERVAL,
    MAX_MISSING,
    MAX_TRIES,
    MIN_RETRY_INTERVAL,
    NackRequester,
)


def fed(*sequences: int, now: float = 0.0) -> NackRequester:
    requester = NackRequester()
    for sequence in sequences:
        requester.on_packet(sequence, now)
    return requester


def test_a_gap_is_asked_for_at_once() -> None:
    requester = fed(10, 11, 14)
    assert requester.due(0.0) == [12, 13]


def test_nothing_is_due_without_a_gap_or_for_reordered_arrivals() -> None:
    requester = fed(10, 11, 12)
    assert requester.due(0.0) == []
    late = fed(10, 12, 11)  # 11 late but before anyone asked
    assert late.due(0.0) == []


def test_a_packet_still_missing_is_asked_for_again_after_the_interval() -> None:
    """The request (or the answer) was lost: no new gap is needed to ask again."""
    requester = fed(10, 12)
    assert requester.due(0.0) == [11]
    requester.on_packet(13, 0.01)
    assert requester.due(0.01) == []  # asked a moment ago
    assert requester.due(DEFAULT_RETRY_INTERVAL) == [11]
    requester.on_packet(11, DEFAULT_RETRY_INTERVAL + 0.01)  # the retransmission
    assert requester.due(1.0) == []
    assert requester.missing == []


def test_gives_up_after_max_tries() -> None:
    requester = fed(1, 3)
    asked = [requester.due(i * 1.0) for i in range(MAX_TRIES + 2)]
    assert asked == [[2]] * MAX_TRIES + [[], []]
    assert requester.missing == []


def test_sequence_numbers_wrap() -> None:
    requester = fed(65534, 1)
    assert requester.due(0.0) == [65535, 0]
    requester.on_packet(0, 0.001)
    assert requester.missing == [65535]


def test_an_outage_sized_gap_is_not_repaired_packet_by_packet() -> None:
    requester = fed(100, 100 + MAX_MISSING + 2)
    assert requester.due(0.0) == []
    requester.on_packet(100 + MAX_MISSING + 4, 0.0)  # ordinary loss afterwards still counts
    assert requester.due(0.0) == [100 + MAX_MISSING + 3]


def test_the_interval_follows_the_round_trip() -> None:
    requester = fed(10, 12)
    requester.due(0.0)
    requester.on_packet(11, 0.2)  # came back 200 ms after one request
    assert requester.rtt == 0.2
    assert requester.retry_interval == 0.2 * 1.5
    lan = fed(10, 12)
    lan.due(0.0)
    lan.on_packet(11, 0.001)
    assert lan.retry_interval == MIN_RETRY_INTERVAL


def test_forget_asks_for_nothing_that_was_missing() -> None:
    requester = NackRequester()
    for sequence in (1, 2, 6):
        requester.on_packet(sequence, 0.0)
    assert requester.forget() == 3  # 3, 4, 5: shed on purpose, never asked for
    assert requester.due(1.0) == []
    requester.on_packet(8, 1.0)
    assert requester.due(1.0) == [7]
