"""Writes the seed inputs of every target into ``fuzz/corpus/<target>/seed-*``.

    python -m fuzz.seeds            # every target
    python -m fuzz.seeds rtcp relay # some (offers, tokens and PDFs differ at every run)

Seeds are real, well-formed inputs (packets built with aiortc's serialisers, offers from a real
RTCPeerConnection, documents written by Pillow, pypdfium2 and pydicom) encoded as each target
reads its input, so fuzzing starts from deep inside each parser. Rerun it after changing how a
target decodes its input, then ``python -m fuzz --minimise``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import struct
import sys
from collections.abc import Iterable
from pathlib import Path

import jwt
import numpy as np
import pydicom
import pypdfium2 as pdfium
from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    HeaderExtensions,
    HeaderExtensionsMap,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
)
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from mcu.crypto.tokens import InviteSigner, ShareSigner

from .targets import accesstokens, library, tokens

CORPUS = Path(__file__).resolve().parent / "corpus"

# VP8: keyframe start (X, I with a 15-bit PictureID, L, T/K), a later packet, an interframe.
VP8_KEYFRAME = bytes([0x90, 0xF0, 0x80, 0x01, 0x05, 0x60]) + b"\x10\x02\x00\x9d\x01\x2a" + b"\0" * 8
VP8_MIDDLE = bytes([0x80, 0x80, 0x80, 0x01]) + b"\x11" * 12
VP8_INTER = bytes([0x10]) + b"\x01\x02\x03"
# H.264: SPS+PPS in a STAP-A, an IDR in three FU-A fragments, a non-IDR slice.
SPS = b"\x67\x42\xc0\x1f\x8c\x8d\x40"
PPS = b"\x68\xce\x3c\x80"
STAP_A = b"\x18" + struct.pack("!H", len(SPS)) + SPS + struct.pack("!H", len(PPS)) + PPS
FU_A = (b"\x7c\x85" + b"\x88" * 10, b"\x7c\x05" + b"\x99" * 10, b"\x7c\x45" + b"\xaa" * 10)
SLICE = b"\x41\x9a\x02\x03"
OPUS = b"\x78\x01\x02\x03\x04"


def _write(target: str, inputs: Iterable[bytes]) -> int:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("seed-*"):
        old.unlink()
    count = 0
    for data in inputs:
        (folder / f"seed-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)
        count += 1
    return count


def _extensions_map() -> HeaderExtensionsMap:
    uris = {
        1: "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        2: "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        4: "urn:ietf:params:rtp-hdrext:sdes:mid",
    }
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(
        RTCRtpParameters(
            headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=u) for i, u in uris.items()]
        )
    )
    return extensions_map


def _rtp(pt: int, seq: int, ts: int, payload: bytes, *, marker: bool = False,
         level: int | None = None, padding: int = 0) -> bytes:  # fmt: skip
    packet = RtpPacket(
        payload_type=pt, sequence_number=seq, timestamp=ts, ssrc=0xCAFE, marker=marker
    )
    packet.payload = payload
    packet.padding_size = padding
    values = HeaderExtensions()
    values.mid = "0"
    values.abs_send_time = 0x123456
    if level is not None:
        values.audio_level = (True, level)
    packet.extensions = values
    return packet.serialize(_extensions_map())


def _datagrams(codec: int, packets: list[bytes], nack: list[int]) -> bytes:
    out = bytes([codec]) + b"".join(struct.pack("!H", len(p)) + p for p in packets)
    return out


def rtp_ingress() -> list[bytes]:
    vp8 = [
        _rtp(96, 100, 9000, VP8_KEYFRAME),
        _rtp(96, 101, 9000, VP8_MIDDLE, marker=True),
        _rtp(97, 5, 9000, struct.pack("!H", 101) + VP8_MIDDLE, marker=True),  # RTX
        _rtp(96, 103, 12000, VP8_INTER, marker=True, padding=4),
    ]
    h264 = [
        _rtp(96, 65534, 1, STAP_A),
        *(_rtp(96, 65535 + i & 0xFFFF, 1, f, marker=i == 2) for i, f in enumerate(FU_A)),
        _rtp(96, 3, 3001, SLICE, marker=True),
    ]
    opus = [_rtp(96, 7 + i, 960 * i, OPUS, marker=i == 0, level=30 + i) for i in range(3)]
    nack = b"\x02\x00\x65\x00\x66"  # NACK count 2: outgoing sequences read from the tail
    return [
        _datagrams(0, vp8, []) + nack,
        _datagrams(1, h264, []) + nack,
        _datagrams(2, opus, []) + nack,
    ]


def rtp_header() -> list[bytes]:
    params = bytes([96]) + b"\x00\x10" + b"\0\0\x10\0" + b"\0\0\0\x01" + bytes([40, 2, 1, 4, 1])
    return [
        params + b"0" + _rtp(96, 1, 2, VP8_KEYFRAME),
        params + b"0" + _rtp(111, 9, 2, OPUS, level=12, padding=3),
    ]


def rtcp() -> list[bytes]:
    sr = RtcpSrPacket(ssrc=1, sender_info=RtcpSenderInfo(0x1234567890ABCDEF, 3000, 10, 1000))
    sr.reports.append(RtcpReceiverInfo(2, 5, 3, 100, 20, 0, 0))
    rr = RtcpRrPacket(ssrc=2, reports=[RtcpReceiverInfo(1, 10, 1, 200, 30, 1, 2)])
    nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=2, media_ssrc=1)
    nack.lost = [5, 6, 9, 40]
    pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=2, media_ssrc=1)
    fir = RtcpPsfbPacket(fmt=RTCP_PSFB_FIR, ssrc=2, media_ssrc=1, fci=b"\0\0\0\1\1\0\0\0")
    remb = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=2, media_ssrc=0, fci=pack_remb_fci(300000, [1]))
    sdes = RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=1, items=[(1, b"cname")])])
    bye = RtcpByePacket(sources=[1])
    packets: list[AnyRtcpPacket] = [sr, rr, nack, pli, fir, remb, sdes, bye]
    return [bytes(p) for p in packets] + [b"".join(bytes(p) for p in packets[1:])]


def vp8_payload() -> list[bytes]:
    return [b"\x12\x34\x07\x01" + p for p in (VP8_KEYFRAME, VP8_MIDDLE, VP8_INTER)]


def h264_payload() -> list[bytes]:
    records = [STAP_A, *FU_A, SLICE]
    flags = [2, 2, 2, 3, 3]
    body = b"".join(bytes([f, len(r)]) + r for f, r in zip(flags, records, strict=True))
    return [b"\x00\x10" + body + b"\x9e\x10"]


def frames() -> list[bytes]:
    def records(items: list[tuple[int, int, bytes]]) -> bytes:
        return b"".join(bytes([flags, step, len(p)]) + p for flags, step, p in items)

    h264 = records([(0, 0, STAP_A), (0, 0, FU_A[0]), (0, 0, FU_A[1]), (1, 0, FU_A[2]),
                    (1, 33, SLICE), (4, 33, SLICE), (1, 0, SLICE)])  # fmt: skip
    vp8 = records([(0, 0, VP8_KEYFRAME), (1, 0, VP8_MIDDLE), (1, 33, VP8_INTER),
                   (0x81, 33, VP8_KEYFRAME), (1, 0, VP8_MIDDLE)])  # fmt: skip
    opus = records([(1, 20, OPUS), (2, 20, OPUS), (1, 20, b"")])
    head = b"\x00\x10" + b"\0\0\x10\0"
    return [b"\x00" + head + h264, b"\x01" + head + vp8, b"\x02" + head + opus]


def relay() -> list[bytes]:
    def sent(stream: int, marker: bool, level: int | None, seq: int, payload: bytes) -> bytes:
        kind = (stream << 2) | (8 if marker else 0)
        level_byte = 0x80 | level if level is not None else 0
        return (
            bytes([kind, level_byte])
            + struct.pack("!HI", seq, 9000)
            + bytes([len(payload)])
            + payload
        )

    def raw(to_edge: bool, datagram: bytes) -> bytes:
        return bytes([1 if to_edge else 2]) + struct.pack("!H", len(datagram)) + datagram

    sr = RtcpSrPacket(ssrc=0x1000, sender_info=RtcpSenderInfo(1 << 40, 9000, 1, 10))
    pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=0, media_ssrc=0x1000)
    level_packet = (
        b"\x90\x6f\x00\x01" + b"\0\0\0\1" + b"\0\0\x20\0" + b"\xbe\xde\x00\x01\x10\x2a\0\0" + OPUS
    )
    return [
        sent(0, False, None, 1, VP8_KEYFRAME) + sent(0, True, None, 2, VP8_MIDDLE)
        + sent(1, True, 40, 7, OPUS) + raw(True, bytes(sr)) + raw(False, bytes(pli))
        + raw(True, level_packet),
    ]  # fmt: skip


async def _offers() -> list[str]:
    offers = []
    for kinds in (("audio", "video"), ("audio", "video", "video"), ("video",)):
        pc = RTCPeerConnection()
        for kind in kinds:
            pc.addTransceiver(kind, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        offers.append(pc.localDescription.sdp)
        await pc.close()
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    offers.append(pc.localDescription.sdp)
    await pc.close()
    return offers


def offers() -> list[bytes]:
    return [offer.encode() for offer in asyncio.run(_offers())]


def signaling_message() -> list[bytes]:
    messages = [
        {"type": "join", "room": "cardio-1", "name": " Dr Li ", "password": "x", "id": 1},
        {"type": "join", "room": "r", "name": "n", "invite": "abc", "media": "none"},
        {"type": "publish", "sdp": "v=0", "tracks": [{"mid": "0", "source": "camera"}], "id": "a"},
        {"type": "subscribe_answer", "sdp": "v=0"},
        {"type": "subscription", "sources": ["camera"], "participants": ["p1"], "mode": "mixed",
         "layout": "grid", "resolution": "640x360", "bitrate": 500000, "page": 1},
        {"type": "mute", "source": "microphone", "muted": True},
        {"type": "chair", "action": "record", "active": True, "participant_id": "p"},
        {"type": "floor", "action": "request"},
        {"type": "slides", "action": "page", "document_id": "d", "page": 3},
        {"type": "hand", "raised": False},
        {"type": "leave"},
        {"type": "ping", "id": 7},
    ]  # fmt: skip
    return [json.dumps(m).encode() for m in messages]


def front_routing() -> list[bytes]:
    paths = [b"whip/cardio-1", b"whep/stroke-4", b"whep/stroke-4/1-abcdef", b"api/rooms/r/invites",
             b"rooms/r/documents", b"internal/rooms/r", b"library/x/play", b"metrics"]  # fmt: skip
    frame = b'{"type": "join", "room": "cardio-1", "name": "n", "password": "p"}'
    return [bytes([m, 2, 0]) + p for m, p in zip((0, 1, 2, 3, 4, 0, 0, 0), paths, strict=True)] + [
        b"\x00\x02\x01" + frame
    ]


def range_header() -> list[bytes]:
    size = struct.pack("!Q", 1 << 20) + b"\x00"
    headers = ["bytes=0-499", "bytes=500-", "bytes=-500", "bytes = 10 - 20 ", "bytes=0-1,5-6"]
    return [size + h.encode() for h in headers]


def library_query() -> list[bytes]:
    return [
        b"q=stroke%20care&department=Neuro&from=2026-01-01&to=2026-02-01T10:00:00Z&limit=10"
        b"&offset=5",
        b"title=Lesson%204&department=Cardio&lecturer=Dr%20Wang&tags=ecg,%20stroke&encrypt=true",
    ]


def share_token() -> list[bytes]:
    signer: ShareSigner = library._SIGNER
    token = signer.issue("item-1", 3600, now=library._NOW)
    payload = {"item": "item-1", "iat": library._NOW, "exp": library._NOW + 60}
    return [b"\x00" + token.encode(), b"\x01" + json.dumps(payload).encode()]


def invite_token() -> list[bytes]:
    signer: InviteSigner = tokens._SIGNER
    token = signer.issue(tokens._ROOM, "chair", 3600, now=tokens._NOW)
    payload = {"room": tokens._ROOM, "role": "viewer", "iat": tokens._NOW, "exp": tokens._NOW + 9}
    return [b"\x00" + token.encode(), b"\x01" + json.dumps(payload).encode()]


def access_token() -> list[bytes]:
    now = accesstokens._NOW
    claims = {"iss": "his", "sub": "u-1", "role": "chair", "room": "cardio-1", "exp": now + 60}
    token = jwt.encode(claims, accesstokens._SECRET, algorithm="HS256")
    staff = claims | {"role": "staff", "department": "Cardiology", "nbf": now - 5, "jti": "t"}
    return [
        b"\x00" + token.encode(),
        b"\x01" + json.dumps(claims).encode(),
        b"\x01" + json.dumps(staff).encode(),
        b"\x00" + token.rsplit(".", 1)[0].encode() + b".",
    ]


def documents() -> list[bytes]:
    out = []
    for fmt, mode in (("PNG", "RGBA"), ("PNG", "I;16"), ("JPEG", "RGB"), ("PNG", "P")):
        image = Image.new(mode, (24, 16))
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        out.append(buffer.getvalue())
    pdf = pdfium.PdfDocument.new()
    pdf.new_page(200, 100)
    pdf.new_page(100, 200)
    buffer = io.BytesIO()
    pdf.save(buffer)
    out.append(buffer.getvalue())
    for photometric, pixels in (
        ("MONOCHROME2", np.arange(64, dtype=np.uint16).reshape(8, 8)),
        ("RGB", np.zeros((4, 4, 3), dtype=np.uint8)),
    ):
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.3.4")
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.SOPInstanceUID = "1.2.3.4"
        ds.set_pixel_data(pixels, photometric, 12 if photometric == "MONOCHROME2" else 8)
        if photometric == "MONOCHROME2":
            ds.WindowCenter, ds.WindowWidth = 40, 80
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    return [b"\x00" + data for data in out]


def main() -> None:
    """Write the seeds of the targets named on the command line, or of every target."""
    sdp = offers()
    seeds: dict[str, list[bytes]] = {
        "rtp_ingress": rtp_ingress(),
        "rtp_header": rtp_header(),
        "rtcp": rtcp(),
        "vp8_payload": vp8_payload(),
        "h264_payload": h264_payload(),
        "frames": frames(),
        "relay": relay(),
        "sdp_offer": sdp,
        "whip_body": sdp,
        "sdp_negotiate": sdp,
        "whep_answer": sdp,
        "signaling_message": signaling_message(),
        "front_routing": front_routing(),
        "range_header": range_header(),
        "library_query": library_query(),
        "share_token": share_token(),
        "invite_token": invite_token(),
        "access_token": access_token(),
        "documents": documents(),
    }
    chosen = sys.argv[1:] or list(seeds)
    unknown = set(chosen) - set(seeds)
    if unknown:
        sys.exit(f"unknown target(s): {', '.join(sorted(unknown))}")
    for target in chosen:
        print(f"{target}: {_write(target, seeds[target])} seeds")


if __name__ == "__main__":
    main()
