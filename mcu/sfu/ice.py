"""Which local addresses and ports the server offers as ICE candidates.

aioice gathers on every interface except loopback and binds ephemeral ports. A server needs the
opposite choices: loopback must work (a box reached only through 127.0.0.1 inside a namespace), an
operator may restrict the addresses, pin media to a firewall-friendly UDP port range, and announce a
public address when it sits behind 1:1 NAT. :func:`install` puts :class:`ServerIceConnection` in
place of aioice's connection inside aiortc.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

import aioice
import aioice.ice
import ifaddr
from aioice.candidate import Candidate, candidate_foundation, candidate_priority

from mcu.sfu.aiortc_send import release_direct

logger = logging.getLogger(__name__)

UDP_BUFFER_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class IcePolicy:
    """The server's candidate policy."""

    addresses: tuple[str, ...] = ()
    "Addresses to gather on; empty means every interface address, loopback included."
    port_min: int | None = None
    "Lowest UDP port for media (with port_max), or None for ephemeral ports."
    port_max: int | None = None
    "Highest UDP port for media."
    public_ip: str | None = None
    "Address announced instead of the bound one (1:1 NAT)."


_policy = IcePolicy()
_port_cursor = itertools.count()


ADDRESSES_TTL_SECONDS = 5.0
"""How long the machine's interface addresses are reused between connections: enumerating them
costs ~0.6-0.9 ms, paid by every join of a server gathering on all interfaces, while an interface
that comes up (a VPN) is picked up within seconds."""
_interfaces: tuple[float, list[str]] = (float("-inf"), [])


def all_interface_addresses() -> list[str]:
    """Every IPv4 and global-scope IPv6 address of this machine, loopback included (read again
    at most every :data:`ADDRESSES_TTL_SECONDS`)."""
    global _interfaces
    read_at, addresses = _interfaces
    now = time.monotonic()
    if now - read_at >= ADDRESSES_TTL_SECONDS:
        addresses = _read_interface_addresses()
        _interfaces = (now, addresses)
    return list(addresses)


def _read_interface_addresses() -> list[str]:
    addresses: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                addresses.append(ip.ip)
            elif ip.ip[2] == 0:  # no scope id: not link-local
                addresses.append(ip.ip[0])
    return addresses


def gather_addresses(policy: IcePolicy) -> list[str]:
    """The addresses host candidates are gathered on under ``policy``."""
    return list(policy.addresses) if policy.addresses else all_interface_addresses()


class ServerIceConnection(aioice.Connection):
    """aioice's connection with the server's address, port-range and public-address policy.

    Its close also closes the duplicates of its sockets that the transmitters write to
    (:func:`mcu.sfu.aiortc_send.release_direct`), at once rather than at a garbage collection.
    """

    async def close(self) -> None:
        release_direct(self)
        await super().close()

    async def get_component_candidates(
        self, component: int, addresses: list[str], timeout: int = 5
    ) -> list[Candidate]:
        if self._transport_policy is aioice.TransportPolicy.RELAY:
            # A connection told to relay only (a client forced through TURN) has no host
            # candidate (RFC 9429 section 3.5.3); aioice passes no addresses for it.
            return await super().get_component_candidates(component, [], timeout)
        policy = _policy
        addresses = gather_addresses(policy)
        if policy.port_min is None:
            candidates = await super().get_component_candidates(component, addresses, timeout)
            host_protocols = [p for p in self._protocols if p.local_candidate.type == "host"]
        else:
            # aioice binds port 0; bind inside the range ourselves and let aioice add only
            # relay candidates (a server with a port range announces its address via public_ip).
            host_protocols = []
            candidates = []
            for address in addresses:
                protocol = await _bind_in_range(self, address, policy, component)
                if protocol is not None:
                    host_protocols.append(protocol)
                    candidates.append(protocol.local_candidate)
            self._protocols += host_protocols
            candidates += await super().get_component_candidates(component, [], timeout)
        for protocol in host_protocols:
            _enlarge_buffers(protocol.transport)
        if policy.public_ip is not None:
            for candidate in candidates:
                if candidate.type == "host" and _same_family(candidate.host, policy.public_ip):
                    candidate.host = policy.public_ip
        return candidates


async def _bind_in_range(
    connection: aioice.Connection, address: str, policy: IcePolicy, component: int
) -> Any:
    assert policy.port_min is not None and policy.port_max is not None
    loop = asyncio.get_running_loop()
    span = policy.port_max - policy.port_min + 1
    start = next(_port_cursor)
    for i in range(span):
        port = policy.port_min + (start + i) % span
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: aioice.ice.StunProtocol(connection), local_addr=(address, port)
            )
        except OSError:
            continue
        sockname = transport.get_extra_info("sockname")
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", sockname[0]),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=sockname[0],
            port=sockname[1],
            type="host",
        )
        return protocol
    logger.error(
        "no free UDP port for media on %s in %d-%d", address, policy.port_min, policy.port_max
    )
    return None


def _enlarge_buffers(transport: asyncio.BaseTransport | None) -> None:
    # A burst of keyframe packets to many subscribers overflows the default buffers.
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_BUFFER_BYTES)
        except OSError:
            pass


def _same_family(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a).version == ipaddress.ip_address(b).version
    except ValueError:
        return False


def install(policy: IcePolicy) -> None:
    """Use ``policy`` for every peer connection created from now on in this process."""
    global _policy
    _policy = policy
    import aiortc.rtcicetransport

    aiortc.rtcicetransport.Connection = ServerIceConnection  # type: ignore[attr-defined,misc]
