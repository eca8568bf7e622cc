"""Wrong-password throttling per client address, driven by an explicit clock."""

from __future__ import annotations

from mcu.signaling.throttle import LoginThrottle

T0 = 10_000.0


def fail(throttle: LoginThrottle, addr: str, now: float) -> float:
    """What a join handler does on a wrong password: ask how long to wait, then record."""
    delay: float = throttle.failure_delay(addr, now)
    throttle.record_failure(addr, now)
    return delay


def test_first_failures_are_free_then_delays_grow_and_cap() -> None:
    throttle = LoginThrottle()
    delays = [fail(throttle, "192.0.2.1", T0 + i) for i in range(9)]
    assert delays == [0, 0, 0, 0.5, 1, 2, 4, 4, 4]
    assert throttle.retry_after("192.0.2.1", T0 + 9) is None


def test_tenth_failure_in_window_locks_out_for_fifteen_minutes() -> None:
    throttle = LoginThrottle()
    for i in range(10):
        assert throttle.retry_after("192.0.2.1", T0 + i) is None
        throttle.record_failure("192.0.2.1", T0 + i)
    locked_at = T0 + 9
    assert throttle.retry_after("192.0.2.1", locked_at) == 900
    assert throttle.retry_after("192.0.2.1", locked_at + 600) == 300
    assert throttle.failure_delay("192.0.2.1", locked_at + 1) == 4
    assert throttle.retry_after("192.0.2.1", locked_at + 900) is None
    # A fresh start after the lockout: typos are free again.
    assert fail(throttle, "192.0.2.1", locked_at + 901) == 0


def test_failures_outside_the_window_are_forgotten() -> None:
    throttle = LoginThrottle()
    # One failure every 70 s: never more than 9 within any 10 minutes.
    for i in range(30):
        throttle.record_failure("192.0.2.1", T0 + 70 * i)
        assert throttle.retry_after("192.0.2.1", T0 + 70 * i) is None
    # 9 earlier failures still in the window, so the next one is the 10th.
    assert throttle.failure_delay("192.0.2.1", T0 + 70 * 29 + 1) == 4


def test_addresses_are_independent() -> None:
    throttle = LoginThrottle()
    for i in range(10):
        throttle.record_failure("192.0.2.1", T0 + i)
    assert throttle.retry_after("192.0.2.1", T0 + 10) is not None
    assert throttle.retry_after("192.0.2.2", T0 + 10) is None
    assert throttle.failure_delay("192.0.2.2", T0 + 10) == 0


def test_success_clears_failures_but_not_a_lockout() -> None:
    throttle = LoginThrottle()
    for i in range(5):
        throttle.record_failure("192.0.2.1", T0 + i)
    throttle.record_success("192.0.2.1")
    assert fail(throttle, "192.0.2.1", T0 + 6) == 0

    for i in range(10):
        throttle.record_failure("192.0.2.9", T0 + i)
    throttle.record_success("192.0.2.9")
    assert throttle.retry_after("192.0.2.9", T0 + 10) is not None


def test_ipv6_hosts_in_one_slash_64_share_a_budget() -> None:
    throttle = LoginThrottle()
    for i in range(10):
        throttle.record_failure(f"2001:db8:1:2::{i + 1:x}", T0 + i)
    assert throttle.retry_after("2001:db8:1:2:ffff::1", T0 + 10) is not None
    assert throttle.retry_after("2001:db8:1:3::1", T0 + 10) is None


def test_ipv4_mapped_addresses_count_as_ipv4() -> None:
    throttle = LoginThrottle()
    for i in range(10):
        throttle.record_failure("::ffff:192.0.2.7", T0 + i)
    assert throttle.retry_after("192.0.2.7", T0 + 10) is not None


def test_memory_is_bounded() -> None:
    throttle = LoginThrottle(max_addresses=100)
    for i in range(1000):
        throttle.record_failure(f"10.0.{i // 256}.{i % 256}", T0)
    assert len(throttle) == 100
    # The most recently active addresses are the ones kept.
    assert throttle.failure_delay("10.0.3.231", T0) == 0
    throttle.record_failure("10.0.3.231", T0)
    throttle.record_failure("10.0.3.231", T0)
    assert throttle.failure_delay("10.0.3.231", T0) == 0.5  # the 4th failure


def test_stale_entries_are_pruned() -> None:
    throttle = LoginThrottle()
    for i in range(50):
        throttle.record_failure(f"10.1.0.{i}", T0)
    for i in range(10):
        throttle.record_failure("10.2.0.1", T0 + i)
    assert len(throttle) == 51
    assert throttle.retry_after("10.9.9.9", T0 + 900) is None
    assert len(throttle) == 1  # only the locked-out address remains
    assert throttle.retry_after("10.9.9.9", T0 + 909) is None
    assert len(throttle) == 0
