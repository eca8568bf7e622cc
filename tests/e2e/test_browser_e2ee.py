"""End to end: two Chromiums in an end-to-end encrypted room decode each other with the key of
their link's fragment, while what the server forwards is ciphertext to anyone without it.

The tap is an aiortc participant of the same room (it declares `e2ee`, as a page would, but
has no key): it records the VP8 RTP payloads the server sends it. The test generated the key,
so it can check the frame format of docs/e2ee.md from outside the browser: each frame decrypts
with the key, and without it is no VP8 picture.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections import defaultdict
from typing import Any

import av
import pytest
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mcu.codecs.vp8 import parse_descriptor
from tests.e2e.chromium import CHROMIUM_PATH, Chromium, ChromiumError, Page, chromium_available
from tests.e2e.room_page import (
    JOIN_TIMEOUT,
    describe,
    wait_for_media,
    wait_for_stats,
    with_name,
)
from tests.support.room_client import RoomClient

pytestmark = pytest.mark.skipif(
    not chromium_available(),
    reason=f"no Chromium at {CHROMIUM_PATH} (Debian package `chromium`; CI installs it)",
)

ROOM, PASSWORD = "e2ee-consult", "e2ee-secret-pass"
PASSPHRASE = "四个 random words 护士"  # not ASCII: the page encodes it as UTF-8 (NFC)
TRAILER = 13  # 12-byte IV, then the format byte


def _frames_decoded(stats: dict[str, Any]) -> int:
    return sum(s["framesDecoded"] for s in stats["inbound"] if s["kind"] == "video")


def _decrypt(key: bytes, frame: bytes) -> bytes:
    """A frame of docs/e2ee.md decrypted with ``key`` (raises InvalidTag with another key)."""
    assert frame[-1] == 1, "format byte"
    clear = 10 if not frame[0] & 0x01 else 3  # a VP8 keyframe's payload header, or a delta's
    iv, sealed = frame[-TRAILER:-1], frame[clear:-TRAILER]
    plain = AESGCM(key).decrypt(iv, sealed, frame[:clear] + b"\x01")
    return frame[:clear] + plain


def _vp8_pictures(frames: list[bytes]) -> tuple[int, int]:
    """(pictures libvpx decoded, frames it refused) from whole VP8 frames, keyframe first."""
    decoder = av.CodecContext.create("libvpx", "r")
    pictures = refused = 0
    for data in frames:
        try:
            pictures += len(decoder.decode(av.Packet(data)))
        except av.error.FFmpegError:
            refused += 1
    return pictures, refused


async def test_two_browsers_decrypt_each_other_and_the_server_forwards_ciphertext(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = secrets.token_bytes(32)
    fragment = "#key=" + base64.urlsafe_b64encode(key).rstrip(b"=").decode()
    await server.create_room(ROOM, PASSWORD, title="Sensitive consultation", e2ee=True)
    urls = [
        with_name(server.base_url, await server.invite(ROOM, role="chair"), "Dr Chair") + fragment,
        with_name(server.base_url, await server.invite(ROOM), "Patient") + fragment,
    ]

    # The tap: every RTP packet the server sends the aiortc participant, before its decoder.
    packets: dict[int, list[RtpPacket]] = defaultdict(list)
    handle = RTCRtpReceiver._handle_rtp_packet

    async def tapped(receiver: RTCRtpReceiver, packet: RtpPacket, arrival_time_ms: int) -> None:
        if receiver._RTCRtpReceiver__kind == "video":  # type: ignore[attr-defined]
            packets[packet.ssrc].append(packet)
        await handle(receiver, packet, arrival_time_ms)

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", tapped)
    tap = RoomClient(server.ws_url, "Tap")
    async with Chromium() as browser:
        pages: list[Page] = []
        try:
            for url in urls:
                pages.append(await browser.open(url))
            for page in pages:
                await page.wait_for("window.mcu?.state === 'joined'", timeout=JOIN_TIMEOUT)
            first = [await wait_for_media(page) for page in pages]
            # Decoding goes on (not one lucky keyframe): more frames than at first.
            for page, stats in zip(pages, first, strict=True):
                seen = _frames_decoded(stats)
                await wait_for_stats(page, lambda s, n=seen: _frames_decoded(s) > n + 10, "more")
            status = [await page.evaluate("window.mcu.e2ee()") for page in pages]
            badges = [
                await page.evaluate("!document.getElementById('e2ee-badge').hidden")
                for page in pages
            ]

            await tap.connect()
            refused = await tap.join(ROOM, PASSWORD)  # a client that does not encrypt
            assert refused["type"] == "error" and refused["code"] == "e2ee_mismatch", refused
            joined = await tap.join(ROOM, PASSWORD, e2ee=True)
            assert joined["room"]["e2ee"] is True
            # A consumer starts at a keyframe: the server still finds them in encrypted VP8.
            await tap.wait_until(lambda: any(len(p) > 60 for p in packets.values()), timeout=20)

            # Without a key in the link, the join page asks for the passphrase.
            asking = await browser.open(with_name(server.base_url, f"/r/{ROOM}", "Nurse"))
            pages.append(asking)
            await asking.wait_for("!document.getElementById('e2ee-row').hidden", timeout=20)
            # The passphrase's key is PBKDF2-HMAC-SHA256 as docs/e2ee.md says: it seals a
            # test message exactly as the same key made here does.
            sealed_in_page = await asking.evaluate(
                "import('/static/e2ee.js').then(async (m) => {"
                f" const key = await m.passphraseKey({json.dumps(PASSPHRASE)}, {json.dumps(ROOM)});"
                " const iv = new Uint8Array(12), data = new TextEncoder().encode('ecg');"
                " const out = await crypto.subtle.encrypt({name: 'AES-GCM', iv}, key, data);"
                " return Array.from(new Uint8Array(out)); })"
            )
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc}\n{await describe(pages)}")
        finally:
            await tap.close()

    for page_status in status:
        assert page_status["keySource"] == "fragment"
        assert page_status["encrypted"] > 0 and page_status["decrypted"] > 0
        assert page_status["failed"] == 0
    assert badges == [True, True]
    derived = hashlib.pbkdf2_hmac("sha256", PASSPHRASE.encode(), ROOM.encode(), 600_000)
    assert bytes(sealed_in_page) == AESGCM(derived).encrypt(bytes(12), b"ecg", None)

    stream = max(packets.values(), key=len)
    frames: list[bytes] = []
    current = b""
    for packet in stream:
        descriptor = parse_descriptor(packet.payload)
        if descriptor.start_of_partition and descriptor.partition_id == 0:
            current = b""
        current += packet.payload[descriptor.header_size :]
        if packet.marker:
            frames.append(current)
    assert not frames[0][0] & 0x01, "the tap's first frame is a keyframe"
    plain = [_decrypt(key, frame) for frame in frames]
    with pytest.raises(InvalidTag):
        _decrypt(secrets.token_bytes(32), frames[0])
    # Decrypted, the frames are the browser's VP8; as forwarded, libvpx makes no picture of them.
    assert _vp8_pictures(plain)[0] > 0
    assert _vp8_pictures(frames)[0] == 0
    # The aiortc participant's own decoder got nothing either; the server decoded nothing.
    assert sum(t.frames for t in tap.received.values() if t.kind == "video") == 0
    assert await server.decoded_frames() == 0
