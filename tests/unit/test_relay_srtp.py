"""SRTP on relays between nodes: the keys both ends derive, and the cipher, on literal packets."""

from __future__ import annotations

import re

import pytest

from mcu.contracts.cluster import RelayReply, RelayRequest, StageDescription
from mcu.crypto.relaykeys import (
    RELAY_KEY_BYTES,
    RELAY_NONCE_PATTERN,
    new_relay_nonce,
    relay_key,
    relay_keys,
)
from mcu.crypto.relaysrtp import REPLAYED, UNAUTHENTICATED, RelayCipher
from mcu.sfu.relaywire import picture_loss_indication, sender_report
from mcu.sfu.rtp import build_header

SECRET = b"s" * 40
HOME, EDGE = "10.0.0.11:40000", "10.1.0.12:40002"


def rtp(sequence: int, payload: bytes = b"\xaa" * 1188, ssrc: int = 7) -> bytes:
    return build_header(96, False, sequence, sequence * 3000, ssrc, b"") + payload


def pair(nonce: str = "e:h") -> tuple[RelayCipher, RelayCipher]:
    """A home's and an edge's cipher for one relay."""
    keys = relay_keys(SECRET, HOME, EDGE, *nonce.split(":"))
    home = RelayCipher(keys.home_to_edge, keys.edge_to_home, nonce)
    edge = RelayCipher(keys.edge_to_home, keys.home_to_edge, nonce)
    return home, edge


# -- keys -------------------------------------------------------------------------------------


def test_both_ends_derive_the_same_keys_and_each_direction_its_own() -> None:
    keys = relay_keys(SECRET, HOME, EDGE, "edge-nonce", "home-nonce")
    assert keys == relay_keys(SECRET, HOME, EDGE, "edge-nonce", "home-nonce")
    assert len(keys.home_to_edge) == len(keys.edge_to_home) == RELAY_KEY_BYTES
    assert keys.home_to_edge != keys.edge_to_home
    assert keys.home_to_edge == relay_key(
        SECRET, HOME, EDGE, "edge-nonce:home-nonce", "home-to-edge"
    )
    # Anything else in the derivation gives other keys.
    others = [
        relay_keys(b"t" * 40, HOME, EDGE, "edge-nonce", "home-nonce"),
        relay_keys(SECRET, EDGE, HOME, "edge-nonce", "home-nonce"),
        relay_keys(SECRET, HOME, EDGE, "edge-nonce2", "home-nonce"),
        relay_keys(SECRET, HOME, EDGE, "edge-nonce", "home-nonce2"),
    ]
    seen = {keys.home_to_edge, keys.edge_to_home}
    for other in others:
        assert not seen & {other.home_to_edge, other.edge_to_home}
        seen |= {other.home_to_edge, other.edge_to_home}
    assert "home_to_edge" not in repr(keys) and keys.home_to_edge.hex() not in repr(keys)


def test_nonces_are_fresh_and_the_contract_takes_exactly_them() -> None:
    nonces = {new_relay_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(re.fullmatch(RELAY_NONCE_PATTERN, n) for n in nonces)
    nonce = nonces.pop()
    request = RelayRequest(worker=1, host="10.1.0.12", port=40002, node="0a1b2c3d4e5f", nonce=nonce)
    assert RelayRequest.model_validate_json(request.model_dump_json()) == request
    # Today's messages, without the new fields, stay valid.
    assert RelayRequest.model_validate({"worker": 1, "host": "127.0.0.1", "port": 9}).nonce is None
    stage = StageDescription(video=(), audio=())
    assert RelayReply(relay=("127.0.0.1", 9), stage=stage).nonce is None
    for bad in ("", "short", "x" * 65, "a" * 21 + "!", 12345):
        with pytest.raises(ValueError):
            RelayRequest.model_validate({"worker": 1, "host": "127.0.0.1", "port": 9, "nonce": bad})
    with pytest.raises(ValueError):
        RelayRequest.model_validate({"worker": 1, "host": "h", "port": 9, "node": ""})


# -- the cipher -------------------------------------------------------------------------------


def test_rtp_and_rtcp_round_trip_encrypted() -> None:
    home, edge = pair()
    packet = rtp(1)
    protected = home.protect(packet)
    assert protected is not None
    assert len(protected) == len(packet) + 16  # the GCM tag
    assert protected[:12] == packet[:12]  # the header stays readable, as in SRTP
    assert b"\xaa" * 32 not in protected  # the payload does not
    assert edge.unprotect(protected) == packet
    for report in (sender_report(7, 1 << 40, 5000, 1, 1188), picture_loss_indication(7)):
        sender, receiver = (home, edge) if report[1] == 200 else (edge, home)
        protected = sender.protect(report)
        assert protected is not None and protected[1] == report[1]
        assert receiver.unprotect(protected) == report
    assert home.rejected == edge.rejected == {REPLAYED: 0, UNAUTHENTICATED: 0}


def test_forged_altered_plain_and_replayed_packets_are_rejected_by_reason() -> None:
    home, edge = pair()
    rejections: list[str] = []
    keys = relay_keys(SECRET, HOME, EDGE, "e", "h")
    edge = RelayCipher(keys.edge_to_home, keys.home_to_edge, "e:h", rejections.append)
    first = home.protect(rtp(1))
    assert first is not None and edge.unprotect(first) is not None

    altered = bytearray(home.protect(rtp(2)) or b"")
    altered[40] ^= 1
    attacker, _ = pair("other:keys")  # a cipher keyed without this relay's nonces
    forged = attacker.protect(rtp(3))
    assert forged is not None
    for bad in (bytes(altered), forged, rtp(4), b"\x80\x60" + b"\x00" * 20):
        assert edge.unprotect(bad) is None
    assert edge.unprotect(first) is None  # replayed
    pli = picture_loss_indication(7)
    assert home.unprotect(pli) is None  # plain RTCP where SRTCP is expected
    assert edge.rejected == {REPLAYED: 1, UNAUTHENTICATED: 4}
    assert rejections == [UNAUTHENTICATED] * 4 + [REPLAYED]
    assert home.rejected[UNAUTHENTICATED] == 1

    # The stream goes on: the next genuine packets, in or slightly out of order, are accepted.
    later, sooner = home.protect(rtp(6)), home.protect(rtp(5))
    assert later is not None and sooner is not None
    assert edge.unprotect(later) == rtp(6) and edge.unprotect(sooner) == rtp(5)


def test_a_packet_index_is_never_protected_twice() -> None:
    home, _ = pair()
    assert home.protect(rtp(10)) is not None
    assert home.protect(rtp(10)) is None  # same SSRC and index: AES-GCM must not see it again
    assert home.protect(rtp(10, ssrc=8)) is not None  # another stream has its own indexes
    assert home.protect(rtp(11, b"\x00" * 1400)) is None  # beyond what SRTP here takes
    assert home.protect_failures == 2


def test_late_packets_within_the_window_pass_once() -> None:
    home, edge = pair()
    packets = {n: home.protect(rtp(n)) for n in range(1, 1100)}
    assert edge.unprotect(packets[1099] or b"") is not None
    # 1,000 behind the newest is within the 1,024-packet window; 1,090 is not.
    assert edge.unprotect(packets[99] or b"") == rtp(99)
    assert edge.unprotect(packets[9] or b"") is None
    assert edge.rejected[REPLAYED] == 1


def test_sequence_numbers_wrap_under_one_key() -> None:
    home, edge = pair()
    for n in list(range(65530, 65536)) + list(range(0, 6)):
        protected = home.protect(rtp(n))
        assert protected is not None and edge.unprotect(protected) == rtp(n)
