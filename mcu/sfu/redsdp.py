"""RED for Opus (RFC 2198) in SDP: found in a publisher's offer, added to a subscriber's offer,
found again in its answer.

aiortc knows no RED: it leaves it out of what it answers and offers. Chromium offers
``a=rtpmap:63 red/48000/2`` with ``a=fmtp:63 111/111`` (its Opus payload type, once per
redundant copy it may carry) and sends RED when the answer lists it first; as a receiver it
decodes RED whenever its answer kept it. These functions read and write that, over aiortc's
public SDP model, with no I/O.
"""

from __future__ import annotations

from aiortc import sdp
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

RED_PAYLOAD_TYPE = 63
"""What subscribers are offered RED as: Chromium's own choice, outside aiortc's dynamic range
(96-127) and its static ones, so no section of a bundle uses it for another codec."""


def red_format(opus_payload_type: int) -> str:
    """RED's fmtp for one redundant copy of Opus: ``111/111``."""
    return f"{opus_payload_type}/{opus_payload_type}"


def red_payload_type(media: sdp.MediaDescription, opus_payload_type: int) -> int | None:
    """The payload type a media section gives RED over ``opus_payload_type``, or None.

    The fmtp must name only that Opus (``111/111``, or ``111`` for RED that carries one block);
    RED over another codec, or without an fmtp, is not taken.
    """
    for codec in media.rtp.codecs:
        if codec.mimeType.lower() != "audio/red" or codec.clockRate != 48000:
            continue
        formats = [name for name, value in codec.parameters.items() if value is None]
        if len(formats) != 1 or len(codec.parameters) != 1:
            continue
        blocks = formats[0].split("/")
        if blocks and all(block == str(opus_payload_type) for block in blocks):
            return codec.payloadType
    return None


def opus_payload_type(media: sdp.MediaDescription) -> int | None:
    """The payload type of the section's Opus, or None."""
    for codec in media.rtp.codecs:
        if codec.mimeType.lower() == "audio/opus" and codec.payloadType is not None:
            return codec.payloadType
    return None


def offered_red(description: str, mid: str, opus_payload_type: int) -> int | None:
    """RED's payload type in the section ``mid`` of an SDP text, or None (also when the text
    does not parse: then the answer goes without RED)."""
    try:
        parsed = sdp.SessionDescription.parse(description)
    except Exception:  # aiortc's parser raises whatever a bad line makes it raise
        return None
    for media in parsed.media:
        if media.rtp.muxId == mid and media.kind == "audio":
            return red_payload_type(media, opus_payload_type)
    return None


def with_red(description: str, tracks: set[str]) -> str:
    """An offer with RED added after Opus in the audio sections that carry ``tracks`` (the
    track id of their msid; a new section has no mid before the offer is applied)."""
    parsed = sdp.SessionDescription.parse(description)
    for media in parsed.media:
        track = media.msid.split()[-1] if media.msid else None
        if media.kind != "audio" or track not in tracks:
            continue
        opus = opus_payload_type(media)
        if opus is None or red_payload_type(media, opus) is not None:
            continue
        if any(codec.payloadType == RED_PAYLOAD_TYPE for codec in media.rtp.codecs):
            continue
        media.rtp.codecs.append(
            RTCRtpCodecParameters(
                mimeType="audio/red",
                clockRate=48000,
                channels=2,
                payloadType=RED_PAYLOAD_TYPE,
                parameters={red_format(opus): None},
            )
        )
        media.fmt.append(RED_PAYLOAD_TYPE)
    return str(parsed)


def answered_red(description: str) -> dict[str, int]:
    """For each audio section of an answer that kept RED over its Opus: mid -> RED's type."""
    parsed = sdp.SessionDescription.parse(description)
    found = {}
    for media in parsed.media:
        opus = opus_payload_type(media) if media.kind == "audio" else None
        red = red_payload_type(media, opus) if opus is not None else None
        if red is not None and media.rtp.muxId:
            found[media.rtp.muxId] = red
    return found
