"""Repair on relays between nodes: the edge asks for what it missed, the upstream resends it.

Between workers of one node the relay never loses a packet short of a full socket buffer; between
nodes it crosses WANs, where a lost packet is a frozen picture for every viewer of the edge until
the next keyframe. So a relay from another node is repaired as a publisher's leg is:

- the edge (:class:`RelayNacks`) tracks each relay stream's missing sequence numbers with a
  :class:`~mcu.sfu.nack.NackRequester` (asked at once, again every 1.5 round trips, up to 10
  times) and sends RTCP generic NACKs (RFC 4585) to its upstream;
- the upstream (:class:`RelayResender`) answers from the producer's history as RTX (RFC 4588) on
  the stream's RTX SSRC (:func:`rtx_ssrc`), each packet at most once per edge per 100 ms
  (the round trip of a provincial network) and within a budget of half of what it relays to
  that edge (:class:`~mcu.sfu.repair.RepairBudget`, the rules a subscriber's repairs follow).

RTX, not the original packet again: SRTP protects each packet index of an SSRC once (libsrtp
refuses a second time, and AES-GCM must never reuse one), so a resent packet needs a stream of
its own. Its payload is the original relay sequence number and the original payload; the edge
unwraps it and its producer takes it as it takes a publisher's retransmission.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcu.sfu.nack import NackRequester
from mcu.sfu.relaywire import generic_nack
from mcu.sfu.repair import RepairBudget
from mcu.sfu.rtp import pack_fixed_header, rtx_payload

if TYPE_CHECKING:
    from mcu.sfu.relay import RelaySink

__all__ = [
    "RTX_PAYLOAD_TYPE",
    "RTX_SSRC_BIT",
    "RelayNacks",
    "RelayResender",
    "rtx_ssrc",
    "unwrap_rtx",
]

RTX_SSRC_BIT = 0x80000000
"""A stream's RTX SSRC is its relay SSRC with the top bit flipped: a home's relay SSRCs run
consecutively from a random start, so no other stream of that home has it in practice."""
RTX_PAYLOAD_TYPE = 97
"Payload type of relay retransmissions (the edge recognises them by SSRC)."

Remote = tuple[str, int]


def rtx_ssrc(ssrc: int) -> int:
    """The RTX SSRC of relay stream ``ssrc``."""
    return ssrc ^ RTX_SSRC_BIT


def unwrap_rtx(payload: bytes) -> tuple[int, bytes] | None:
    """The original relay sequence number and payload of an RTX payload (None: too short)."""
    if len(payload) < 2:
        return None
    return (payload[0] << 8) | payload[1], payload[2:]


class RelayNacks:
    """Edge side: the missing packets of every relay stream received from another node."""

    __slots__ = ("_streams",)

    def __init__(self) -> None:
        self._streams: dict[tuple[Remote, int], NackRequester] = {}

    def on_packet(self, remote: Remote, ssrc: int, sequence: int, now: float) -> bytes | None:
        """Relay stream ``ssrc`` from ``remote`` brought ``sequence`` (an original or a
        retransmission); the NACK to send upstream now, if any (unprotected)."""
        key = (remote, ssrc)
        requester = self._streams.get(key)
        if requester is None:
            requester = self._streams[key] = NackRequester()
        requester.on_packet(sequence, now)
        due = requester.due(now)
        return generic_nack(ssrc, due) if due else None

    def forget(self, remote: Remote, ssrc: int) -> None:
        """The stream is no longer received."""
        self._streams.pop((remote, ssrc), None)


class RelayResender:
    """Upstream side: the retransmissions one link sends its edge, coalesced and budgeted."""

    __slots__ = ("_budgets", "_rtx_sequences", "resent", "skipped")

    def __init__(self) -> None:
        self._budgets: dict[int, RepairBudget] = {}
        self._rtx_sequences: dict[int, int] = {}
        self.resent = 0
        "Packets resent to the edge."
        self.skipped = 0
        "Packets the edge asked for that were not resent (too old, just resent, over budget)."

    def answer(self, sink: RelaySink, sequences: list[int], now: float) -> list[bytes]:
        """The RTX packets (unprotected) answering the edge's NACK of ``sequences`` on
        ``sink``'s stream: those the producer's history still holds and the rules allow."""
        rewriter = sink._rewriter
        history = sink.producer.history
        if not rewriter.started:
            return []
        budget = self._budgets.get(sink.ssrc)
        if budget is None:
            budget = self._budgets[sink.ssrc] = RepairBudget()
        budget.earn(sink.bytes_sent)
        rtx = rtx_ssrc(sink.ssrc)
        next_sequence = self._rtx_sequences.get(sink.ssrc, 0)
        out: list[bytes] = []
        for sequence in sequences:
            ext = rewriter.incoming(sequence, history.highest)
            packet = None if ext is None else history.get(ext)
            if ext is None or packet is None:
                self.skipped += 1
                continue
            if budget.check(ext, len(packet.payload), packet.arrival, now) is not None:
                self.skipped += 1
                continue
            header = pack_fixed_header(
                RTX_PAYLOAD_TYPE, packet.marker, next_sequence, packet.timestamp, rtx, False
            )
            out.append(header + rtx_payload(sequence, packet.payload))
            next_sequence = (next_sequence + 1) & 0xFFFF
        self._rtx_sequences[sink.ssrc] = next_sequence
        self.resent += len(out)
        return out

    def forget(self, ssrc: int) -> None:
        """Stream ``ssrc`` is no longer relayed on this link (its RTX numbering is kept: SRTP
        must never see an index of the RTX stream twice under the link's keys)."""
        self._budgets.pop(ssrc, None)
