"""VP8 RTP payload descriptor (RFC 7741): parsing, keyframe detection, picture id rewriting.

Every function takes the RTP *payload*, the RTP header already stripped. The descriptor sits at
its front::

         0 1 2 3 4 5 6 7
        +-+-+-+-+-+-+-+-+
        |X|R|N|S|R| PID |  (required)
        +-+-+-+-+-+-+-+-+
   X:   |I|L|T|K| RSV   |  (present if X)
        +-+-+-+-+-+-+-+-+
   I:   |M| PictureID   |  (present if I; M=1 means a second byte follows: 15-bit id)
        +-+-+-+-+-+-+-+-+
        |   PictureID   |
        +-+-+-+-+-+-+-+-+
   L:   |   TL0PICIDX   |  (present if L)
        +-+-+-+-+-+-+-+-+
   T/K: |TID|Y| KEYIDX  |  (present if T or K)
        +-+-+-+-+-+-+-+-+

and, in the first packet of a frame (S=1, PID=0), the VP8 payload header follows it, whose
lowest bit P is the *inverse* keyframe flag::

        +-+-+-+-+-+-+-+-+
        |Size0|H| VER |P|
        +-+-+-+-+-+-+-+-+

These run once per forwarded packet, so they index bytes directly and allocate nothing beyond
their result.
"""

from dataclasses import dataclass, fields, make_dataclass
from typing import TypeAlias

Payload: TypeAlias = bytes | bytearray | memoryview
"""Any read-only view of an RTP payload."""


@dataclass(frozen=True, slots=True)
class Vp8Descriptor:
    """The VP8 payload descriptor at the front of one RTP payload."""

    start_of_partition: bool
    """S bit: this packet carries the first byte of a VP8 partition."""
    partition_id: int
    """PID: the partition this packet belongs to (0..7); 0 is the frame's first."""
    picture_id: int | None
    """PictureID, or None when the I bit is clear."""
    picture_id_bits: int
    """Width of the PictureID field on the wire: 0 (absent), 7 or 15 bits."""
    tl0picidx: int | None
    """TL0PICIDX, the running index of base temporal layer frames, or None when absent."""
    temporal_id: int | None
    """TID, the temporal layer (0..3), or None when the T bit is clear."""
    layer_sync: bool
    """Y bit: the frame depends only on the base layer (a switch-up point); False without T."""
    key_idx: int | None
    """KEYIDX (0..31), bumped on each keyframe, or None when the K bit is clear."""
    header_size: int
    """Descriptor length in bytes: the VP8 payload starts at this offset."""


# A frozen dataclass's __init__ sets each field through object.__setattr__: ~1 us for these
# nine, several times the parsing itself. parse_descriptor builds this mutable twin instead
# (same fields in the same order, hence the same slot layout) and retags it as a
# Vp8Descriptor, which is then as immutable, comparable and hashable as any other: ~0.25 us.
_Vp8DescriptorDraft = make_dataclass(
    "_Vp8DescriptorDraft",
    [(field.name, field.type) for field in fields(Vp8Descriptor)],
    slots=True,
    eq=False,
    repr=False,
)


def parse_descriptor(payload: Payload) -> Vp8Descriptor:
    """Parse the VP8 payload descriptor at the front of ``payload``.

    Raises ValueError if the descriptor is cut short. The VP8 data after it is not inspected.
    """
    size = len(payload)
    if size == 0:
        raise ValueError("VP8 descriptor is empty")
    octet = payload[0]
    picture_id: int | None = None
    picture_id_bits = 0
    tl0picidx: int | None = None
    temporal_id: int | None = None
    layer_sync = False
    key_idx: int | None = None
    pos = 1
    if octet & 0x80:
        if size < 2:
            raise ValueError("VP8 descriptor is truncated before its extension byte")
        ext = payload[1]
        pos = 2
        if ext & 0x80:
            if size <= pos:
                raise ValueError("VP8 descriptor is truncated before its PictureID")
            high = payload[pos]
            if high & 0x80:
                if size <= pos + 1:
                    raise ValueError("VP8 descriptor has a truncated 15-bit PictureID")
                picture_id = ((high & 0x7F) << 8) | payload[pos + 1]
                picture_id_bits = 15
                pos += 2
            else:
                picture_id = high
                picture_id_bits = 7
                pos += 1
        if ext & 0x40:
            if size <= pos:
                raise ValueError("VP8 descriptor is truncated before its TL0PICIDX")
            tl0picidx = payload[pos]
            pos += 1
        if ext & 0x30:
            if size <= pos:
                raise ValueError("VP8 descriptor is truncated before its TID/KEYIDX byte")
            tk = payload[pos]
            pos += 1
            if ext & 0x20:
                temporal_id = tk >> 6
                layer_sync = bool(tk & 0x20)
            if ext & 0x10:
                key_idx = tk & 0x1F
    # Positional, in Vp8Descriptor's field order.
    draft = _Vp8DescriptorDraft(
        bool(octet & 0x10),
        octet & 0x07,
        picture_id,
        picture_id_bits,
        tl0picidx,
        temporal_id,
        layer_sync,
        key_idx,
        pos,
    )
    draft.__class__ = Vp8Descriptor
    descriptor: Vp8Descriptor = draft
    return descriptor


def is_keyframe(payload: Payload) -> bool:
    """Return True if ``payload`` is the first packet of a VP8 keyframe.

    That is S=1, PID=0 and the P bit of the VP8 payload header clear. Later packets of the same
    keyframe return False, as does anything malformed: this never raises.
    """
    size = len(payload)
    if size < 2:
        return False
    octet = payload[0]
    # S=1 and PID=0 (the R bit 0x08 is ignored).
    if octet & 0x17 != 0x10:
        return False
    pos = 1
    if octet & 0x80:
        ext = payload[1]
        pos = 2
        if ext & 0x80:
            if size <= pos:
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:
            pos += 1
        if ext & 0x30:
            pos += 1
    return pos < size and not payload[pos] & 0x01


def rewrite_picture_id(
    payload: bytearray | memoryview, picture_id: int, tl0picidx: int | None
) -> None:
    """Overwrite the PictureID (and TL0PICIDX unless None) of ``payload`` in place.

    The field keeps its width on the wire: ``picture_id`` is taken modulo 2**7 or 2**15, and
    ``tl0picidx`` modulo 2**8, so callers may pass running counters. ``payload`` may be a
    writable memoryview into a whole RTP packet. Raises ValueError, leaving ``payload``
    untouched, if it has no PictureID, or no TL0PICIDX when one is given: a descriptor cannot
    grow in place.
    """
    size = len(payload)
    if size < 3 or not payload[0] & 0x80 or not payload[1] & 0x80:
        raise ValueError("VP8 descriptor has no PictureID to rewrite")
    ext = payload[1]
    long_id = payload[2] & 0x80
    end = 4 if long_id else 3
    if tl0picidx is not None:
        if not ext & 0x40:
            raise ValueError("VP8 descriptor has no TL0PICIDX to rewrite")
        if size <= end:
            raise ValueError("VP8 descriptor is truncated before its TL0PICIDX")
    elif size < end:
        raise ValueError("VP8 descriptor has a truncated 15-bit PictureID")
    if long_id:
        payload[2] = 0x80 | ((picture_id >> 8) & 0x7F)
        payload[3] = picture_id & 0xFF
    else:
        payload[2] = picture_id & 0x7F
    if tl0picidx is not None:
        payload[end] = tl0picidx & 0xFF


NO_LAYERS = (-1, False, -1)
"""What :func:`temporal_layer` says of a payload without temporal layers (or a malformed one)."""


def temporal_layer(payload: Payload) -> tuple[int, bool, int]:
    """The (TID, layer sync, PictureID) of the frame ``payload`` belongs to.

    TID is -1 when the descriptor has no T bit (the publisher sends one layer), PictureID -1
    when it has none. Never raises: a malformed descriptor gives :data:`NO_LAYERS`.
    """
    size = len(payload)
    if size < 2 or not payload[0] & 0x80:
        return NO_LAYERS
    ext = payload[1]
    pos = 2
    picture_id = -1
    if ext & 0x80:
        if size <= pos:
            return NO_LAYERS
        high = payload[pos]
        if high & 0x80:
            if size <= pos + 1:
                return NO_LAYERS
            picture_id = ((high & 0x7F) << 8) | payload[pos + 1]
            pos += 2
        else:
            picture_id = high
            pos += 1
    if ext & 0x40:
        pos += 1
    if not ext & 0x20 or size <= pos:
        return (-1, False, picture_id)
    tk = payload[pos]
    return (tk >> 6, bool(tk & 0x20), picture_id)
