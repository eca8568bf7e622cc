"""H.264 RTP payloads (RFC 6184): NAL unit types, keyframe detection, Annex-B reassembly.

Every function takes the RTP *payload*, the RTP header already stripped. It starts with a NAL
unit header::

        +-+-+-+-+-+-+-+-+
        |F|NRI|  Type   |
        +-+-+-+-+-+-+-+-+

Type 1..23 is a single NAL unit; WebRTC's packetization-mode=1 adds STAP-A (24), several NAL
units each behind a 16-bit size, and FU-A (28), one NAL unit cut into fragments, each behind a
FU indicator (the F and NRI of the original, type 28) and a FU header::

        +-+-+-+-+-+-+-+-+
        |S|E|R|  Type   |   S: first fragment, E: last fragment, Type: the original NAL's
        +-+-+-+-+-+-+-+-+

STAP-B, MTAP and FU-B belong to the interleaved mode, which WebRTC does not negotiate; they are
treated as unsupported.
"""

from typing import Final, TypeAlias

Payload: TypeAlias = bytes | bytearray | memoryview
"""Any read-only view of an RTP payload."""

NAL_SLICE: Final = 1
"""Coded slice of a non-IDR picture."""
NAL_IDR: Final = 5
"""Coded slice of an IDR picture: decoding can start here given SPS and PPS."""
NAL_SEI: Final = 6
"""Supplemental enhancement information."""
NAL_SPS: Final = 7
"""Sequence parameter set."""
NAL_PPS: Final = 8
"""Picture parameter set."""
NAL_AUD: Final = 9
"""Access unit delimiter."""
NAL_STAP_A: Final = 24
"""Single-time aggregation packet: several NAL units of one access unit."""
NAL_STAP_B: Final = 25
NAL_MTAP16: Final = 26
NAL_MTAP24: Final = 27
NAL_FU_A: Final = 28
"""Fragmentation unit: one NAL unit spread over several packets."""
NAL_FU_B: Final = 29

START_CODE: Final = b"\x00\x00\x00\x01"
"""The Annex-B start code put before every NAL unit of an access unit."""


def nal_types(payload: Payload) -> list[int]:
    """Return the types of the NAL units that ``payload`` carries or starts.

    A single NAL unit gives its type; a STAP-A the type of each aggregated unit in order; a
    FU-A start fragment the type of the fragmented unit, and a FU-A middle or end fragment an
    empty list, as it starts no NAL unit. Raises ValueError on a truncated payload or an
    unsupported packet type (0, 25..27, 29..31).
    """
    size = len(payload)
    if size == 0:
        raise ValueError("H.264 payload is empty")
    nal_type = payload[0] & 0x1F
    if 0 < nal_type < NAL_STAP_A:
        return [nal_type]
    if nal_type == NAL_STAP_A:
        types: list[int] = []
        pos = 1
        while pos < size:
            if pos + 2 > size:
                raise ValueError("STAP-A size field is truncated")
            nal_size = (payload[pos] << 8) | payload[pos + 1]
            pos += 2
            if nal_size == 0 or pos + nal_size > size:
                raise ValueError("STAP-A NAL unit is truncated")
            types.append(payload[pos] & 0x1F)
            pos += nal_size
        return types
    if nal_type == NAL_FU_A:
        if size < 2:
            raise ValueError("FU-A header is truncated")
        fu_header = payload[1]
        return [fu_header & 0x1F] if fu_header & 0x80 else []
    raise ValueError(f"H.264 packet type {nal_type} is not supported")


def is_keyframe(payload: Payload) -> bool:
    """Return True if ``payload`` starts an SPS (7) or an IDR slice (5).

    Either marks where a subscriber can start decoding. libwebrtc sends SPS and PPS in a
    STAP-A before each IDR, so its keyframes are caught at their first packet by the SPS;
    counting the IDR start as well serves senders that put parameter sets only in the SDP or
    send them rarely. A keyframe may thus report True twice (SPS packet, then IDR start),
    which is harmless for switching on the first. Only NAL headers are read, so a truncated
    STAP-A is judged by the units it shows; never raises.
    """
    size = len(payload)
    if size == 0:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type == NAL_IDR or nal_type == NAL_SPS:
        return True
    if nal_type == NAL_FU_A:
        if size < 2:
            return False
        fu_header = payload[1]
        return bool(fu_header & 0x80) and (
            fu_header & 0x1F == NAL_IDR or fu_header & 0x1F == NAL_SPS
        )
    if nal_type == NAL_STAP_A:
        pos = 1
        # Each unit is a 2-byte size then the NAL header; stop at a truncated one.
        while pos + 2 < size:
            inner = payload[pos + 2] & 0x1F
            if inner == NAL_IDR or inner == NAL_SPS:
                return True
            pos += 2 + ((payload[pos] << 8) | payload[pos + 1])
    return False


class H264Depacketizer:
    """Turns the RTP payloads of one H.264 stream, in order, into Annex-B access units.

    Feed every payload to :meth:`push`; the packet with the RTP marker bit ends the access
    unit, which is then returned with a start code before each NAL unit. A FU-A sequence that
    breaks (a middle or end without its start, a new start or another packet before its end,
    the marker before its end, or a gap in the optional sequence numbers) is dropped whole,
    and so are malformed or unsupported packets; the other NAL units of the access unit are
    kept. :attr:`dropped` counts what was discarded. Payloads are never mutated.
    """

    __slots__ = ("_fragment", "_last_sequence", "_parts", "dropped")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        """Start codes and NAL units of the access unit being assembled."""
        self._fragment: bytearray | None = None
        """Start code and NAL unit rebuilt so far from FU-A fragments, or None."""
        self._last_sequence: int | None = None
        self.dropped = 0
        """Packets discarded as malformed or unsupported, plus broken FU-A sequences."""

    def reset(self) -> None:
        """Forget the partial access unit, e.g. after a seek or an SSRC change."""
        self._parts.clear()
        self._fragment = None
        self._last_sequence = None

    def push(
        self, payload: Payload, marker: bool, sequence_number: int | None = None
    ) -> bytes | None:
        """Add one RTP payload; return the finished access unit if ``marker`` is set.

        ``sequence_number`` (the RTP one, optional) lets a lost FU-A fragment be detected;
        without it only the FU-A start and end bits can reveal a loss. Returns None while the
        access unit is incomplete, or if it ended up empty.
        """
        if sequence_number is not None:
            last = self._last_sequence
            if last is not None and sequence_number != (last + 1) & 0xFFFF:
                self._drop_fragment()
            self._last_sequence = sequence_number
        self._add(payload)
        if not marker:
            return None
        if self._fragment is not None:
            self._drop_fragment()
        if not self._parts:
            return None
        access_unit = b"".join(self._parts)
        self._parts.clear()
        return access_unit

    def _add(self, payload: Payload) -> None:
        size = len(payload)
        if size == 0:
            self.dropped += 1
            return
        indicator = payload[0]
        nal_type = indicator & 0x1F
        if nal_type == NAL_FU_A:
            self._add_fragment(payload, indicator)
            return
        # Any other packet means the fragmented NAL unit will never be finished.
        if self._fragment is not None:
            self._drop_fragment()
        if 0 < nal_type < NAL_STAP_A:
            self._parts.append(START_CODE)
            self._parts.append(bytes(payload))
        elif nal_type == NAL_STAP_A:
            self._add_aggregate(payload)
        else:
            self.dropped += 1

    def _add_fragment(self, payload: Payload, indicator: int) -> None:
        if len(payload) < 2:
            self._drop_fragment()
            self.dropped += 1
            return
        fu_header = payload[1]
        if fu_header & 0x80:
            if self._fragment is not None:
                self._drop_fragment()
            fragment = bytearray(START_CODE)
            # The original NAL header: F and NRI from the indicator, type from the FU header.
            fragment.append((indicator & 0xE0) | (fu_header & 0x1F))
            fragment += payload[2:]
            self._fragment = fragment
        elif self._fragment is None:
            # The start was lost (or already dropped): nothing to attach this to.
            self.dropped += 1
            return
        else:
            self._fragment += payload[2:]
        if fu_header & 0x40:
            self._parts.append(bytes(self._fragment))
            self._fragment = None

    def _add_aggregate(self, payload: Payload) -> None:
        size = len(payload)
        units: list[bytes] = []
        pos = 1
        while pos < size:
            if pos + 2 > size:
                self.dropped += 1
                return
            nal_size = (payload[pos] << 8) | payload[pos + 1]
            pos += 2
            if nal_size == 0 or pos + nal_size > size:
                self.dropped += 1
                return
            units.append(START_CODE)
            units.append(bytes(payload[pos : pos + nal_size]))
            pos += nal_size
        self._parts.extend(units)

    def _drop_fragment(self) -> None:
        if self._fragment is not None:
            self._fragment = None
            self.dropped += 1
