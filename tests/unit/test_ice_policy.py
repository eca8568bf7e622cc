"""The server's ICE candidate policy: loopback, port range, public address (no traffic sent)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aioice
import pytest

from mcu.sfu import ice


@pytest.fixture
def policy() -> Iterator[None]:
    yield
    ice.install(ice.IcePolicy(addresses=("127.0.0.1",)))  # what tests/conftest.py installs


async def _gather() -> list[tuple[str, int, str]]:
    connection = ice.ServerIceConnection(ice_controlling=True)
    try:
        await connection.gather_candidates()
        return [(c.host, c.port, c.type) for c in connection.local_candidates]
    finally:
        await connection.close()


async def test_loopback_is_offered_when_asked(policy: None) -> None:
    ice.install(ice.IcePolicy(addresses=("127.0.0.1",)))
    candidates = await _gather()
    assert [(h, t) for h, _, t in candidates] == [("127.0.0.1", "host")]


async def test_port_range_is_respected(policy: None) -> None:
    ice.install(ice.IcePolicy(addresses=("127.0.0.1",), port_min=41000, port_max=41003))
    ports = [(await _gather())[0][1] for _ in range(3)]
    assert all(41000 <= p <= 41003 for p in ports)


async def test_public_ip_is_announced(policy: None) -> None:
    ice.install(ice.IcePolicy(addresses=("127.0.0.1",), public_ip="203.0.113.7"))
    assert [h for h, _, _ in await _gather()] == ["203.0.113.7"]


async def test_relay_policy_gathers_no_host_candidate(policy: None) -> None:
    # A client forced through TURN must not offer its own addresses (no TURN server here, so
    # it offers nothing at all).
    connection = ice.ServerIceConnection(
        ice_controlling=True, transport_policy=aioice.TransportPolicy.RELAY
    )
    try:
        await connection.gather_candidates()
        assert connection.local_candidates == []
    finally:
        await connection.close()


async def test_gathering_binds_every_address_without_resolving_or_enumerating(
    policy: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aioice reads every interface's addresses per connection and binds through
    # create_datagram_endpoint(local_addr=...), which resolves the address on the loop's thread
    # pool: a dozen loop turns per address, each tens of milliseconds when the server is busy.
    # The server's gathering does neither, and still offers each policy address once.
    def refused(*args: object, **kwargs: object) -> object:
        raise AssertionError("not on a join's path")

    monkeypatch.setattr(aioice.ice, "get_host_addresses", refused)
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", refused, raising=False)
    ice.install(ice.IcePolicy(addresses=("127.0.0.1", "::1")))
    candidates = await _gather()
    assert sorted((h, t) for h, _, t in candidates) == [("127.0.0.1", "host"), ("::1", "host")]
    assert all(port > 0 for _, port, _ in candidates)


async def test_an_address_that_cannot_be_bound_is_left_out(policy: None) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: the others are still offered.
    ice.install(ice.IcePolicy(addresses=("192.0.2.1", "127.0.0.1")))
    assert [(h, t) for h, _, t in await _gather()] == [("127.0.0.1", "host")]


def test_default_includes_loopback() -> None:
    assert "127.0.0.1" in ice.gather_addresses(ice.IcePolicy())


def test_interface_addresses_are_read_once_per_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    # Enumerating interfaces costs most of a millisecond: every join of a server gathering on
    # all interfaces would pay it. Within the TTL the last list is reused; after it, re-read.
    reads = []
    real = ice.ifaddr.get_adapters

    def counted() -> object:
        reads.append(1)
        return real()

    now = [1000.0]
    monkeypatch.setattr(ice.ifaddr, "get_adapters", counted)
    monkeypatch.setattr(ice.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(ice, "_interfaces", (float("-inf"), []))
    first = ice.all_interface_addresses()
    first.append("mutated by a caller")
    now[0] += ice.ADDRESSES_TTL_SECONDS / 2
    assert "mutated by a caller" not in ice.all_interface_addresses()
    assert len(reads) == 1
    now[0] += ice.ADDRESSES_TTL_SECONDS
    assert "127.0.0.1" in ice.all_interface_addresses() and len(reads) == 2
