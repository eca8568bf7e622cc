"""WebSocket caps per address and in total, as a table; the addresses they count by."""

from __future__ import annotations

import pytest

from mcu.infra.socketlimits import FrameRate, SocketLimits, address_key, descriptors_short


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),  # a dual-stack listener's IPv4 client
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("unknown", "unknown"),
    ],
)
def test_address_key(address: str, key: str) -> None:
    assert address_key(address) == key


def test_caps_per_address_then_in_total() -> None:
    limits = SocketLimits(per_address=2, total=3, join_timeout=10)
    steps = [
        ("192.0.2.1", None),
        ("192.0.2.1", None),
        ("192.0.2.1", "address"),
        ("::ffff:192.0.2.1", "address"),  # the same client, spelled as IPv6
        ("2001:db8::1", None),
        ("2001:db8::2", "total"),  # the /64 holds 1 of 2, the server 3 of 3
        ("198.51.100.9", "total"),
    ]
    for address, refusal in steps:
        assert limits.admit(address) == refusal, address
    assert limits.open == 3
    assert limits.refused == {"address": 2, "total": 2}
    assert limits.held_by("192.0.2.1") == 2 and limits.held_by("2001:db8::ffff") == 1

    limits.release("192.0.2.1")
    assert limits.admit("198.51.100.9") is None  # a place in the total came free
    assert limits.admit("192.0.2.1") == "total"
    limits.release("2001:db8::1")
    assert limits.admit("192.0.2.1") is None  # and now one of this address's two
    assert limits.open == 3


def test_release_of_a_socket_never_admitted_is_an_error() -> None:
    limits = SocketLimits(per_address=2, total=3, join_timeout=10)
    with pytest.raises(ValueError):
        limits.release("192.0.2.1")
    limits.admit("192.0.2.1")
    limits.release("192.0.2.1")
    assert limits.open == 0 and limits.held_by("192.0.2.1") == 0


def test_refusal_replies_and_timeout_reason() -> None:
    limits = SocketLimits(per_address=200, total=10_000, join_timeout=15)
    assert limits.refusal_reply("address")[:2] == (429, "too_many_connections")
    assert "200" in limits.refusal_reply("address")[2]
    assert limits.refusal_reply("total")[:2] == (503, "busy")
    assert limits.join_timeout_reason == "no join within 15 s"
    limits.join_timed_out()
    assert limits.join_timeouts == 1


def test_descriptors_short() -> None:
    assert descriptors_short(10_000, 2, 1_048_576) == 0
    assert descriptors_short(10_000, 2, 20_000) == 1024  # the headroom is missing
    assert descriptors_short(10_000, 1, 20_000) == 0


def test_frame_rate_allows_a_burst_then_the_rate_then_closes_a_flood() -> None:
    rate = FrameRate(rate=20, burst=40)
    t = 100.0
    assert all(rate.take(t) for _ in range(40))  # a join and its first requests at once
    assert not rate.take(t)
    assert rate.should_warn(t) and not rate.should_warn(t + 0.5) and rate.should_warn(t + 1.0)
    # Refilled at 20 a second.
    assert rate.take(t + 0.125) and rate.take(t + 0.125) and not rate.take(t + 0.125)
    assert not rate.should_close()
    for _ in range(300):  # 300 frames at once, well over the rate
        rate.take(t + 0.125)
    assert rate.should_close()


def test_frame_rate_forgets_old_excess() -> None:
    rate = FrameRate(rate=20, burst=1)
    rate.take(0.0)
    for _ in range(150):
        rate.take(0.0)
    for i in range(150):
        rate.take(20.0 + i * 0.0001)  # a new window: the old excess no longer counts
    assert not rate.should_close()
