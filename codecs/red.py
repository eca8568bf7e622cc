"""RED payloads (RFC 2198): one RTP payload carrying a primary block and redundant copies of
earlier ones.

Chromium sends Opus this way (``red/48000/2``, fmtp ``111/111``) when the answer puts RED first:
each packet also carries the previous frame(s), so a single lost packet costs no audio. The
payload starts with one header per block; every block but the last (the primary) has a 4-byte
header, the primary a 1-byte one::

        0                   1                   2                   3
        0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
       +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       |F|   block PT  |  timestamp offset         |   block length    |
       +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       |0|   block PT  |   (the primary's header: F = 0, no offset, no length)
       +-+-+-+-+-+-+-+-+

then the blocks' data in the same order, the primary's running to the end of the payload. The
primary's timestamp is the RTP header's; a redundant block's is that minus its offset.

The payload is untrusted: every function returns None for one that does not hold together
(a header cut short, lengths past the end) and never raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

Payload: TypeAlias = bytes | bytearray | memoryview
"""Any read-only view of an RTP payload."""

_REDUNDANT_HEADER = 4
_PRIMARY_HEADER = 1


@dataclass(frozen=True, slots=True)
class RedBlock:
    """One block of a RED payload."""

    payload_type: int
    "The block's own payload type (Opus's, for WebRTC)."
    timestamp_offset: int
    "How far (in the clock rate) the block is before the RTP timestamp; 0 for the primary."
    data: bytes
    "The block's payload (an Opus packet)."


def red_primary(payload: Payload) -> tuple[int, bytes] | None:
    """The primary block's payload type and data, or None if the payload is malformed.

    The forwarding path's one call per RED packet: it walks the headers and copies only the
    primary's bytes.
    """
    end = len(payload)
    offset = 0
    skipped = 0  # data of the redundant blocks, which precedes the primary's
    while offset < end:
        first = payload[offset]
        if not first & 0x80:
            start = offset + _PRIMARY_HEADER + skipped
            if start > end:
                return None
            return first & 0x7F, bytes(payload[start:])
        if offset + _REDUNDANT_HEADER > end:
            return None
        skipped += ((payload[offset + 2] & 0x03) << 8) | payload[offset + 3]
        offset += _REDUNDANT_HEADER
    return None  # no primary header at all


def red_with_payload_type(payload: bytes, payload_type: int) -> bytes | None:
    """``payload`` with every block's payload type set to ``payload_type``, or None if malformed.

    RED names the codec of each block by payload type, and a subscriber's leg may number Opus
    differently from the publisher's (Chromium 111, aiortc's offers 96): a block whose type the
    subscriber did not negotiate is not decoded. Returns ``payload`` itself when nothing changes.
    """
    end = len(payload)
    offset = 0
    changed: bytearray | None = None
    while offset < end:
        first = payload[offset]
        if first & 0x7F != payload_type:
            if changed is None:
                changed = bytearray(payload)
            changed[offset] = (first & 0x80) | (payload_type & 0x7F)
        if not first & 0x80:
            return payload if changed is None else bytes(changed)
        if offset + _REDUNDANT_HEADER > end:
            return None
        offset += _REDUNDANT_HEADER
    return None


def red_blocks(payload: Payload) -> list[RedBlock] | None:
    """Every block, oldest redundant block first and the primary last, or None if malformed."""
    end = len(payload)
    offset = 0
    headers: list[tuple[int, int, int]] = []  # payload type, timestamp offset, length
    while True:
        if offset >= end:
            return None
        first = payload[offset]
        if not first & 0x80:
            offset += _PRIMARY_HEADER
            break
        if offset + _REDUNDANT_HEADER > end:
            return None
        value = int.from_bytes(payload[offset + 1 : offset + 4], "big")
        headers.append((first & 0x7F, value >> 10, value & 0x3FF))
        offset += _REDUNDANT_HEADER
    blocks = []
    for payload_type, timestamp_offset, length in headers:
        if offset + length > end:
            return None
        blocks.append(
            RedBlock(payload_type, timestamp_offset, bytes(payload[offset : offset + length]))
        )
        offset += length
    blocks.append(RedBlock(first & 0x7F, 0, bytes(payload[offset:])))
    return blocks


def pack_red(blocks: list[RedBlock]) -> bytes:
    """A RED payload of ``blocks`` (the last one the primary); for tests and tools.

    Raises ValueError if there is no block, or a redundant block's offset or length does not fit
    its 14 or 10 bits.
    """
    if not blocks:
        raise ValueError("a RED payload needs a primary block")
    *redundant, primary = blocks
    head = bytearray()
    for block in redundant:
        if not 0 <= block.timestamp_offset < 1 << 14 or len(block.data) >= 1 << 10:
            raise ValueError("a redundant block's offset or length does not fit")
        value = (block.timestamp_offset << 10) | len(block.data)
        head += bytes([0x80 | (block.payload_type & 0x7F)]) + value.to_bytes(3, "big")
    head.append(primary.payload_type & 0x7F)
    return bytes(head) + b"".join(block.data for block in blocks)
