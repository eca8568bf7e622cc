"""Floor control: grant, queue, pre-emption, release and hand-over."""

from __future__ import annotations

from mcu.signaling.rooms.floor import FloorChange, FloorControl


def test_grant_queue_and_hand_over() -> None:
    floor = FloorControl()
    assert floor.request("a", preempt=False) == FloorChange("a", None, "granted", None)
    assert floor.request("a", preempt=False) is None
    assert floor.request("b", preempt=False) == 1
    assert floor.request("c", preempt=False) == 2
    assert floor.set_mode("a", "stream") == FloorChange("a", "stream", "granted")
    assert floor.set_mode("b", "stream") is None  # only the holder shows content
    change = floor.release("a")
    assert change == FloorChange("b", None, "granted", "a")
    assert floor.positions() == [("c", 1)]
    assert floor.release("c") is None and floor.queue == []
    assert floor.release("b", "left") == FloorChange(None, None, "left", "b")


def test_chair_preempts() -> None:
    floor = FloorControl()
    floor.request("a", preempt=False)
    floor.set_mode("a", "slides")
    floor.request("chair", preempt=False)  # queued first...
    change = floor.request("chair", preempt=True)  # ...then takes over
    assert change == FloorChange("chair", None, "preempted", "a")
    assert floor.queue == [] and floor.mode is None


def test_release_by_someone_else_changes_nothing() -> None:
    floor = FloorControl()
    floor.request("a", preempt=False)
    assert floor.release("b") is None and floor.holder == "a"
