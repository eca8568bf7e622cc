"""The webhook outbox as a table: order per receiver and room, backoff, and its bounds (time as
data, no network)."""

from __future__ import annotations

from mcu.signaling.endpoints.webhookqueue import Outbox, OutgoingEvent, RetryPolicy

A, B = "http://a.example/hook", "http://b.example/hook"


def _event(n: int, room: str = "r1") -> OutgoingEvent:
    return OutgoingEvent(f"e{n}", "participant.joined", room, 1000.0 + n, b"{}")


def test_the_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(first_delay=1.0, max_delay=60.0, max_attempts=8)
    assert [policy.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.delay(10_000) == 60.0  # no overflow, however many


def test_each_receiver_gets_each_room_in_order_and_a_failure_holds_only_its_queue() -> None:
    outbox = Outbox((A, B))
    started, dropped = outbox.add(_event(1), now=0.0)
    assert started == [(A, "r1"), (B, "r1")] and dropped == []
    assert outbox.add(_event(2), now=0.1) == ([], [])  # queues already being sent
    assert outbox.add(_event(3, room="r2"), now=0.2)[0] == [(A, "r2"), (B, "r2")]
    assert outbox.depth == 6

    first = outbox.next((A, "r1"))
    assert first is not None and first.event.id == "e1" and first.sending
    assert outbox.failed((A, "r1"), "HTTP 500", now=1.0) is None
    again = outbox.next((A, "r1"))
    assert again is first and again.attempts == 1 and again.not_before == 2.0  # 1 s later
    assert again.last_error == "HTTP 500"

    # Receiver B and room r2 go on meanwhile.
    b_first = outbox.next((B, "r1"))
    assert b_first is not None and b_first.event.id == "e1"
    outbox.delivered((B, "r1"))
    b_second = outbox.next((B, "r1"))
    assert b_second is not None and b_second.event.id == "e2"

    assert outbox.failed((A, "r1"), "HTTP 500", now=2.0) is None
    retried = outbox.next((A, "r1"))
    assert retried is not None and retried.not_before == 4.0  # 2 s later
    outbox.delivered((A, "r1"))
    after = outbox.next((A, "r1"))
    assert after is not None and after.event.id == "e2"  # only after e1, never before


def test_an_event_is_abandoned_after_its_attempts_and_the_queue_goes_on() -> None:
    outbox = Outbox((A,), RetryPolicy(first_delay=1.0, max_attempts=3))
    outbox.add(_event(1), now=0.0)
    outbox.add(_event(2), now=0.0)
    key = (A, "r1")
    results = []
    for now in (0.0, 1.0, 3.0):
        assert outbox.next(key) is not None
        results.append(outbox.failed(key, "ConnectionRefusedError", now))
    assert results[:2] == [None, None]
    abandoned = results[2]
    assert abandoned is not None and abandoned.reason == "retries_exhausted"
    assert abandoned.event.id == "e1" and abandoned.attempts == 3
    following = outbox.next(key)
    assert following is not None and following.event.id == "e2" and following.attempts == 0
    assert list(outbox.undelivered) == [abandoned] and outbox.depth == 1
    outbox.delivered(key)
    assert outbox.next(key) is None and key not in outbox.queues  # an empty queue is forgotten


def test_a_full_queue_drops_its_oldest_waiting_event_never_the_one_being_sent() -> None:
    outbox = Outbox((A,), queue_limit=3)
    for n in range(1, 4):
        outbox.add(_event(n), now=0.0)
    assert outbox.next((A, "r1")) is not None  # e1 is being sent
    _, dropped = outbox.add(_event(4), now=0.0)
    assert [d.event.id for d in dropped] == ["e2"] and dropped[0].reason == "queue_full"
    assert [p.event.id for p in outbox.waiting()] == ["e1", "e3", "e4"]
    assert outbox.depth == 3


def test_all_queues_together_stay_within_the_total() -> None:
    outbox = Outbox((A,), queue_limit=100, total_limit=4)
    for n in range(1, 5):
        outbox.add(_event(n, room=f"r{n}"), now=0.0)
    for n in range(1, 5):
        assert outbox.next((A, f"r{n}")) is not None  # every queue's only event is being sent
    started, dropped = outbox.add(_event(5, room="r5"), now=0.0)
    # Nothing to make room with: the new event itself is dropped, and no sender starts.
    assert started == [] and [d.event.id for d in dropped] == ["e5"]
    assert (A, "r5") not in outbox.queues and outbox.depth == 4
    outbox.add(_event(6, room="r1"), now=0.0)  # would be the fifth
    assert [d.event.id for d in outbox.undelivered] == ["e5", "e6"]
    # A thousand more events for a dead receiver: memory stays at the bound.
    for n in range(1000):
        outbox.add(_event(100 + n, room=f"x{n % 7}"), now=float(n))
    assert outbox.depth <= 4 and sum(len(q) for q in outbox.queues.values()) == outbox.depth
    assert len(outbox.undelivered) == outbox.kept_undelivered


def test_stopping_drops_what_still_waits() -> None:
    outbox = Outbox((A, B))
    outbox.add(_event(1), now=0.0)
    dropped = outbox.clear()
    assert sorted((d.receiver, d.reason) for d in dropped) == [(A, "shutdown"), (B, "shutdown")]
    assert outbox.depth == 0 and not outbox.queues
