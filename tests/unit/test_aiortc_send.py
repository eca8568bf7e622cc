"""The transmitter's direct libsrtp path sends what ``pylibsrtp.Session.protect`` would, over a
real UDP socket (through the transport, or written to the socket connected to the remote), and
refuses what it must (too long, not keyed, nothing nominated, closed)."""

from __future__ import annotations

import asyncio
import os
import socket
from types import SimpleNamespace
from typing import Any

import pytest
from aioice.ice import StunProtocol
from pylibsrtp import Policy, Session

from mcu.sfu.aiortc_send import (
    CHECK_EVERY,
    MAX_PLAIN_BYTES,
    SrtpTransmitter,
    direct_descriptor,
)

KEY = os.urandom(32 + 12)
OTHER_KEY = os.urandom(32 + 12)
PROFILE = Policy.SRTP_PROFILE_AEAD_AES_256_GCM


def _session(direction: int, key: bytes = KEY) -> Session:
    return Session(Policy(key=key, ssrc_type=direction, srtp_profile=PROFILE))


def _rtp(sequence: int, payload: bytes) -> tuple[bytes, bytes]:
    header = bytes((0x80, 96)) + sequence.to_bytes(2, "big") + bytes(4) + b"\x12\x34\x56\x78"
    return header, payload


class Pair:
    """An aioice candidate pair as far as the transmitter reads one."""

    def __init__(self, protocol: Any, remote_addr: Any, kind: str = "host") -> None:
        self.protocol, self.remote_addr = protocol, remote_addr
        self.local_candidate = SimpleNamespace(type=kind)


@pytest.mark.parametrize("direct", [False, True], ids=["transport", "connected-socket"])
async def test_sends_what_pylibsrtp_would_and_refuses_what_it_must(direct: bool) -> None:
    loop = asyncio.get_running_loop()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    connection = SimpleNamespace(_nominated={})
    dtls: Any = SimpleNamespace(transport=SimpleNamespace(_connection=connection), _tx_srtp=None)
    sender = SrtpTransmitter(dtls)
    try:
        assert not sender.ready() and not sender.send(*_rtp(1, b"x"))  # not keyed yet
        dtls._tx_srtp = _session(Policy.SSRC_ANY_OUTBOUND)
        assert not sender.send(*_rtp(1, b"x"))  # keyed, but no candidate pair nominated
        if direct:  # aioice's protocol on a host candidate: written to the connected socket
            protocol: Any = StunProtocol.__new__(StunProtocol)
            protocol.transport = transport
        else:  # anything else (a relayed pair) goes through the transport's sendto
            protocol = SimpleNamespace(transport=transport)
        pair = Pair(protocol, receiver.getsockname())
        connection._nominated[1] = pair
        assert sender.ready()
        reference = _session(Policy.SSRC_ANY_OUTBOUND)
        unprotect = _session(Policy.SSRC_ANY_INBOUND)
        for sequence, size in enumerate((1, 200, 1180, 0), start=1):
            header, payload = _rtp(sequence, os.urandom(size))
            assert sender.send(header, payload)
            wire = await loop.run_in_executor(None, receiver.recv, 2048)
            assert wire == reference.protect(header + payload)  # the same bytes, byte for byte
            assert unprotect.unprotect(wire) == header + payload
        assert not sender.send(header, payload)  # libsrtp refuses to protect a number twice
        header, payload = _rtp(5, b"whole")
        assert sender.send(header + payload)  # a whole packet in one piece
        wire = await loop.run_in_executor(None, receiver.recv, 2048)
        assert unprotect.unprotect(wire) == header + payload
        assert not sender.send(*_rtp(9, bytes(MAX_PLAIN_BYTES)))  # too long to protect
        # DTLS keyed again: the fast path notices at its next full check, CHECK_EVERY at most
        dtls._tx_srtp = _session(Policy.SSRC_ANY_OUTBOUND, OTHER_KEY)
        for sequence in range(10, 11 + CHECK_EVERY):
            header, payload = _rtp(sequence, b"after rekey")
            assert sender.send(header, payload)
            wire = await loop.run_in_executor(None, receiver.recv, 2048)
        assert _session(Policy.SSRC_ANY_INBOUND, OTHER_KEY).unprotect(wire) == header + payload
        peer = transport.get_extra_info("socket").getpeername() if direct else None
        assert peer == (receiver.getsockname() if direct else None)
        transport.close()  # refused by the next full check too
        sent = [
            sender.send(*_rtp(sequence, b"closed")) for sequence in range(100, 101 + CHECK_EVERY)
        ]
        assert not sent[-1] and sent.count(False) >= 1
    finally:
        transport.close()
        receiver.close()


@pytest.mark.parametrize("size", [MAX_PLAIN_BYTES - 12])
def test_the_longest_packet_fits_pylibsrtps_own_limit(size: int) -> None:
    header, payload = _rtp(1, bytes(size))
    assert len(_session(Policy.SSRC_ANY_OUTBOUND).protect(header + payload)) > size


def test_only_an_address_is_connected_to_never_a_name() -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        protocol: Any = StunProtocol.__new__(StunProtocol)
        protocol.transport = SimpleNamespace(get_extra_info=lambda name: udp)
        assert direct_descriptor(Pair(protocol, ("peer.local", 5000))) == -1
        assert direct_descriptor(Pair(protocol, ("127.0.0.1", 5000), kind="relay")) == -1
    finally:
        udp.close()


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_closing_the_ice_connection_closes_the_duplicate_and_stops_the_fast_path() -> None:
    # Two of the server's ICE connections over loopback; the controlling one's transmitter
    # writes to a duplicate of its socket. The connection's close must close that duplicate at
    # once (with the garbage collector off, as a busy server's rarely runs), and the
    # transmitter must never write to the descriptor number again: opened anew, it may be
    # another subscriber's socket or a recording's file.
    import gc

    from mcu.sfu import ice

    a = ice.ServerIceConnection(ice_controlling=True)
    b = ice.ServerIceConnection(ice_controlling=False)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gc.disable()
    try:
        for one in (a, b):
            await one.gather_candidates()
        for one, other in ((a, b), (b, a)):
            for candidate in other.local_candidates:
                await one.add_remote_candidate(candidate)
            await one.add_remote_candidate(None)
            one.remote_username, one.remote_password = other.local_username, other.local_password
        await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), 10)
        before = _open_descriptors()
        dtls: Any = SimpleNamespace(transport=SimpleNamespace(_connection=a), _tx_srtp=None)
        dtls._tx_srtp = _session(Policy.SSRC_ANY_OUTBOUND)
        sender = SrtpTransmitter(dtls)
        assert sender.send(*_rtp(1, b"to b"))
        duplicated = direct_descriptor(a._nominated[1])
        assert duplicated >= 0 and _open_descriptors() == before + 1
        await a.close()
        assert _open_descriptors() == before - 1  # the duplicate and aioice's own socket
        # The lowest free number is taken next: the duplicate's, or aioice's socket's.
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        receiver.connect(receiver.getsockname())  # a datagram written to its number loops back
        sent = [sender.send(*_rtp(seq, b"after close")) for seq in range(2, 3 + CHECK_EVERY)]
        assert not any(sent)
        with pytest.raises(BlockingIOError):
            receiver.recv(2048)
    finally:
        gc.enable()
        receiver.close()
        await a.close()
        await b.close()
