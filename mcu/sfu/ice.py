"""Which local addresses and ports the server offers as ICE candidates.

aioice gathers on every interface except loopback and binds ephemeral ports. A server needs the
opposite choices: loopback must work (a box reached only through 127.0.0.1 inside a namespace), an
operator may restrict the addresses, pin media to a firewall-friendly UDP port range, and announce a
public address when it sits behind 1:1 NAT. :func:`install` puts :class:`ServerIceConnection` in
place of aioice's connection inside aiortc.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import itertools
import logging
import socket
import time
from collections.abc import Iterable
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

    async def gather_candidates(self) -> None:
        """Gather the local candidates, as aioice does, without its reading of every interface's
        addresses (which :meth:`get_component_candidates` does not use: the policy's, or the
        cached, addresses are) and without a task per component (the server bundles and muxes
        RTCP: one component), which cost a loop turn each."""
        if self._local_candidates_start:
            return
        self._local_candidates_start = True
        for component in self._components:
            self._local_candidates += await self.get_component_candidates(component, [])
        self._local_candidates_end = True

    async def get_component_candidates(
        self, component: int, addresses: list[str], timeout: int = 5
    ) -> list[Candidate]:
        if self._transport_policy is aioice.TransportPolicy.RELAY:
            # A connection told to relay only (a client forced through TURN) has no host
            # candidate (RFC 9429 section 3.5.3); aioice passes no addresses for it.
            return await super().get_component_candidates(component, [], timeout)
        policy = _policy
        host_protocols = await _open_host_sockets(self, gather_addresses(policy), policy, component)
        self._protocols += host_protocols
        candidates = [p.local_candidate for p in host_protocols]
        reflexive = [
            asyncio.ensure_future(aioice.ice.server_reflexive_candidate(p, self.stun_server))
            for p in host_protocols
            if self.stun_server and policy.port_min is None and _is_ipv4(p.local_candidate.host)
        ]
        # aioice adds what it gathers from servers: a TURN relay (and, alongside, the
        # server-reflexive addresses a STUN server reports for the host sockets, as it would).
        candidates += await super().get_component_candidates(component, [], timeout)
        if reflexive:
            done, pending = await asyncio.wait(reflexive, timeout=timeout)
            for task in pending:
                task.cancel()
            candidates += [t.result()[0] for t in done if t.exception() is None]
        if policy.public_ip is not None:
            for candidate in candidates:
                if candidate.type == "host" and _same_family(candidate.host, policy.public_ip):
                    candidate.host = policy.public_ip
        return candidates


async def _open_host_sockets(
    connection: aioice.Connection, addresses: list[str], policy: IcePolicy, component: int
) -> list[Any]:
    """A bound UDP socket (in the port range when there is one) per address, as aioice's
    protocols with their host candidates.

    The sockets are bound here rather than by ``create_datagram_endpoint(local_addr=...)``,
    which resolves the address on the loop's thread pool first: a dozen loop turns per address
    where a turn is short, and under load (forwarding to hundreds while others join) each turn is
    tens of milliseconds, which made gathering most of a join's wait (0.2 s median at 300
    subscribers joining at 30/s)."""
    loop = asyncio.get_running_loop()
    sockets = [s for s in (_bind(address, policy) for address in addresses) if s is not None]
    opened: list[Any] = []
    for sock in sockets:
        try:
            opened.append(
                await loop.create_datagram_endpoint(
                    lambda: aioice.ice.StunProtocol(connection), sock=sock
                )
            )
        except OSError as exc:
            opened.append(exc)
    protocols = []
    for sock, result in zip(sockets, opened, strict=True):
        if isinstance(result, BaseException):
            logger.warning("cannot use a UDP socket for media: %s", result)
            sock.close()
            continue
        transport, protocol = result
        _enlarge_buffers(transport)
        host, port = transport.get_extra_info("sockname")[:2]
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", host),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=host,
            port=port,
            type="host",
        )
        protocols.append(protocol)
    return protocols


def _bind(address: str, policy: IcePolicy) -> socket.socket | None:
    """A non-blocking UDP socket bound to ``address`` (an ephemeral port, or the next free one in
    the policy's range); None if it cannot be bound."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    if policy.port_min is None or policy.port_max is None:
        ports: Iterable[int] = (0,)
    else:
        span = policy.port_max - policy.port_min + 1
        start = next(_port_cursor)
        ports = (policy.port_min + (start + i) % span for i in range(span))
    for port in ports:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((address, port))
        except OSError as exc:
            sock.close()
            if port == 0 or exc.errno != errno.EADDRINUSE:
                logger.info("cannot bind a media socket on %s: %s", address, exc)
                return None
            continue
        sock.setblocking(False)
        return sock
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


def _is_ipv4(address: str) -> bool:
    return ipaddress.ip_address(address).version == 4


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
