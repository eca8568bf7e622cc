"""SRTP and SRTCP on a relay between nodes: AEAD_AES_256_GCM by libsrtp (pylibsrtp).

One :class:`RelayCipher` protects what one end of a relay sends and checks what it receives,
each direction under its own key (:mod:`mcu.crypto.relaykeys`). It is pure (bytes in, bytes
out) and never raises on a packet: a packet that cannot be protected is reported as None, one
that fails authentication or the replay check is rejected, counted by reason, and reported as
None, so the relay drops it and goes on.

Why libsrtp: it is what aiortc already uses for every browser leg (its GCM profiles included),
it keeps the per-SSRC rollover counters and replay windows of RFC 3711, and it refuses to
protect two packets under one packet index, the mistake that breaks AES-GCM.
"""

from __future__ import annotations

from collections.abc import Callable

from pylibsrtp import Error, Policy, Session

__all__ = [
    "PROFILE",
    "REPLAYED",
    "REPLAY_WINDOW",
    "UNAUTHENTICATED",
    "RelayCipher",
    "is_rtcp",
]

PROFILE = Policy.SRTP_PROFILE_AEAD_AES_256_GCM
"The SRTP protection profile of relays between nodes (RFC 7714; 16-byte tag per packet)."

REPLAY_WINDOW = 1024
"""Packets a receiver accepts out of order (libsrtp's default is 128). The relay passes on a
publisher's late and retransmitted packets with their own numbers; at a lecture's ~200 packets/s
per video stream this is five seconds, beyond any NACK round trip."""

REPLAYED = "replayed"
"Rejection reason: a packet index already received, or older than the replay window."
UNAUTHENTICATED = "unauthenticated"
"Rejection reason: the authentication tag does not verify (forged, altered, plain, other key)."


def is_rtcp(packet: bytes) -> bool:
    """Whether ``packet`` (at least 2 bytes) is RTCP by its packet type (RFC 5761): the relay's
    RTP payload types (96, 111) never fall in 192-223. SRTCP keeps this byte in the clear."""
    return 192 <= packet[1] <= 223


def _session(key: bytes, ssrc_type: int) -> Session:
    policy = Policy(key=key, ssrc_type=ssrc_type, srtp_profile=PROFILE)
    policy.window_size = REPLAY_WINDOW
    # A repeated packet index is refused, never protected again (allow_repeat_tx stays off).
    return Session(policy)


class RelayCipher:
    """SRTP/SRTCP for one end of one relay: ``send_key`` protects, ``receive_key`` checks.

    ``nonce`` is the nonce pair the keys were derived from (the relay compares it to tell
    whether the other end re-keyed). ``on_reject`` is told the reason of every rejection (the
    relay counts them in a metric). Counts: ``rejected`` by reason, ``protect_failures``.
    """

    __slots__ = ("_on_reject", "_rx", "_tx", "nonce", "protect_failures", "rejected")

    def __init__(
        self,
        send_key: bytes,
        receive_key: bytes,
        nonce: str = "",
        on_reject: Callable[[str], None] | None = None,
    ) -> None:
        self._tx = _session(send_key, Policy.SSRC_ANY_OUTBOUND)
        self._rx = _session(receive_key, Policy.SSRC_ANY_INBOUND)
        self._on_reject = on_reject
        self.nonce = nonce
        self.rejected = {REPLAYED: 0, UNAUTHENTICATED: 0}
        "Received packets rejected, by reason."
        self.protect_failures = 0
        "Packets not sent: too long for SRTP, or a packet index used before."

    def protect(self, packet: bytes) -> bytes | None:
        """``packet`` (RTP, or one RTCP packet) as SRTP/SRTCP; None if it cannot be sent."""
        try:
            if is_rtcp(packet):
                return self._tx.protect_rtcp(packet)
            return self._tx.protect(packet)
        except (Error, ValueError):
            self.protect_failures += 1
            return None

    def unprotect(self, packet: bytes) -> bytes | None:
        """The RTP or RTCP inside an SRTP/SRTCP ``packet``; None (counted) when it is not
        authentic or was received before."""
        try:
            if is_rtcp(packet):
                return self._rx.unprotect_rtcp(packet)
            return self._rx.unprotect(packet)
        except Error as exc:
            reason = REPLAYED if "replay" in str(exc) else UNAUTHENTICATED
        except ValueError:  # longer than any packet libsrtp takes
            reason = UNAUTHENTICATED
        self.rejected[reason] += 1
        if self._on_reject is not None:
            self._on_reject(reason)
        return None
