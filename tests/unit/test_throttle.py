"""Wrong-password throttling per address and room, per address, and per room, on an explicit
clock, with attempts counted while they are being checked."""

from __future__ import annotations

from mcu.signaling.rooms.throttle import LoginThrottle

T0 = 10_000.0
HOSPITAL = "192.0.2.1"  # one NAT address for a whole hospital


def fail(throttle: LoginThrottle, addr: str, now: float, room: str = "cardio-1") -> float:
    """What a join handler does on a wrong password: begin, check, record."""
    assert throttle.begin(addr, room, now) is None
    delay: float = throttle.failed(addr, room, now)
    return delay


def test_first_failures_are_free_then_delays_grow_and_cap() -> None:
    throttle = LoginThrottle()
    delays = [fail(throttle, HOSPITAL, T0 + i) for i in range(9)]
    assert delays == [0, 0, 0, 0.5, 1, 2, 4, 4, 4]
    assert throttle.retry_after(HOSPITAL, "cardio-1", T0 + 9) is None


def test_tenth_failure_locks_that_address_out_of_that_room_only() -> None:
    throttle = LoginThrottle()
    for i in range(10):
        fail(throttle, HOSPITAL, T0 + i)
    locked_at = T0 + 9
    assert throttle.begin(HOSPITAL, "cardio-1", locked_at) == 900
    assert throttle.retry_after(HOSPITAL, "cardio-1", locked_at + 600) == 300
    # The hospital's other rooms, and other addresses in this room, are not affected.
    assert throttle.begin(HOSPITAL, "neuro-2", locked_at) is None
    throttle.succeeded(HOSPITAL, "neuro-2")
    assert throttle.begin("198.51.100.7", "cardio-1", locked_at) is None
    throttle.succeeded("198.51.100.7", "cardio-1")
    assert throttle.retry_after(HOSPITAL, "cardio-1", locked_at + 900) is None
    # A fresh start after the lockout: typos are free again.
    assert fail(throttle, HOSPITAL, locked_at + 901) == 0


def test_attempts_in_flight_count_so_a_burst_is_not_all_evaluated() -> None:
    throttle = LoginThrottle()
    admitted = [throttle.begin(HOSPITAL, "cardio-1", T0) is None for _ in range(500)]
    # Only as many checks start as the scope allows; the rest are refused before any hashing.
    assert sum(admitted) == 10
    for _ in range(10):
        throttle.failed(HOSPITAL, "cardio-1", T0 + 1)
    assert throttle.begin(HOSPITAL, "cardio-1", T0 + 2) == 900 - 1


def test_one_address_spraying_rooms_is_locked_everywhere() -> None:
    throttle = LoginThrottle()
    for i in range(30):
        fail(throttle, HOSPITAL, T0 + i, room=f"room-{i}")
    assert throttle.begin(HOSPITAL, "room-99", T0 + 29) == 900
    assert throttle.address_retry_after(HOSPITAL, T0 + 29) == 900
    assert throttle.begin("198.51.100.7", "room-99", T0 + 30) is None


def test_a_guesser_rotating_addresses_locks_the_rooms_passwords() -> None:
    throttle = LoginThrottle()
    for i in range(100):
        fail(throttle, f"10.0.{i // 200}.{i % 200}", T0 + i)
    assert throttle.begin("198.51.100.7", "cardio-1", T0 + 99) == 300
    assert throttle.begin("198.51.100.7", "neuro-2", T0 + 100) is None


def test_failures_outside_the_window_are_forgotten() -> None:
    throttle = LoginThrottle()
    # One failure every 70 s: never more than 9 within any 10 minutes.
    for i in range(30):
        fail(throttle, HOSPITAL, T0 + 70 * i)
    assert throttle.retry_after(HOSPITAL, "cardio-1", T0 + 70 * 29 + 1) is None
    # 9 earlier failures still in the window, so the next one is the 10th.
    assert fail(throttle, HOSPITAL, T0 + 70 * 29 + 1) == 4


def test_success_clears_the_rooms_failures_but_not_a_lockout() -> None:
    throttle = LoginThrottle()
    for i in range(5):
        fail(throttle, HOSPITAL, T0 + i)
    assert throttle.begin(HOSPITAL, "cardio-1", T0 + 5) is None
    throttle.succeeded(HOSPITAL, "cardio-1")
    assert fail(throttle, HOSPITAL, T0 + 6) == 0

    for i in range(10):
        fail(throttle, "192.0.2.9", T0 + i)
    throttle.succeeded("192.0.2.9", "cardio-1")
    assert throttle.retry_after("192.0.2.9", "cardio-1", T0 + 10) is not None


def test_unknown_rooms_count_against_the_address_only() -> None:
    throttle = LoginThrottle()
    delays = [throttle.address_failed(HOSPITAL, T0 + i) for i in range(30)]
    assert delays[:4] == [0, 0, 0, 0.5]
    assert throttle.address_retry_after(HOSPITAL, T0 + 29) == 900
    assert throttle.address_retry_after("198.51.100.7", T0 + 30) is None


def test_ipv6_hosts_in_one_slash_64_share_a_budget() -> None:
    throttle = LoginThrottle()
    for i in range(10):
        fail(throttle, f"2001:db8:1:2::{i + 1:x}", T0 + i)
    assert throttle.retry_after("2001:db8:1:2:ffff::1", "cardio-1", T0 + 10) is not None
    assert throttle.retry_after("2001:db8:1:3::1", "cardio-1", T0 + 10) is None


def test_ipv4_mapped_addresses_count_as_ipv4() -> None:
    throttle = LoginThrottle()
    for i in range(10):
        fail(throttle, "::ffff:192.0.2.7", T0 + i)
    assert throttle.retry_after("192.0.2.7", "cardio-1", T0 + 10) is not None


def test_memory_is_bounded() -> None:
    throttle = LoginThrottle(max_entries=100)
    for i in range(1000):
        fail(throttle, f"10.0.{i // 256}.{i % 256}", T0, room=f"r{i}")
    assert len(throttle) == 100


def test_stale_entries_are_pruned() -> None:
    throttle = LoginThrottle()
    for i in range(50):
        fail(throttle, f"10.1.0.{i}", T0, room="a")
    for i in range(10):
        fail(throttle, "10.2.0.1", T0 + i, room="b")
    assert throttle.retry_after("10.9.9.9", "c", T0 + 900) is None
    # Room "a"'s and its addresses' entries are gone; "b"'s three scopes remain (one locked).
    assert len(throttle) == 3
    assert throttle.retry_after("10.9.9.9", "c", T0 + 909) is None
    assert len(throttle) == 0


def test_locked_ignores_checks_in_flight_but_not_a_lockout() -> None:
    throttle = LoginThrottle()
    for _ in range(10):
        assert throttle.begin(HOSPITAL, "cardio-1", T0) is None
    # Ten checks running: a new one may not start, one sharing a running check may wait.
    assert throttle.begin(HOSPITAL, "cardio-1", T0) is not None
    assert throttle.locked(HOSPITAL, "cardio-1", T0) is None
    for _ in range(10):
        throttle.failed(HOSPITAL, "cardio-1", T0)
    assert throttle.locked(HOSPITAL, "cardio-1", T0) == 900
    # Sharers reserve nothing: their verdicts never release another attempt's slot.
    other = LoginThrottle()
    assert other.begin(HOSPITAL, "cardio-1", T0) is None
    other.succeeded(HOSPITAL, "cardio-1", reserved=False)
    other.failed(HOSPITAL, "cardio-1", T0, reserved=False)
    assert [other.begin(HOSPITAL, "cardio-1", T0) is None for _ in range(9)].count(True) == 8
