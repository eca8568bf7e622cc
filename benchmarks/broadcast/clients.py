"""The two kinds of peer a broadcast has: one WHIP lecturer and many counting WHEP viewers.

Both are aiortc peer connections that make the offer and exchange it in one HTTP round trip
(``POST /whip/{room}``, ``POST /whep/{room}``: 201 with the answer and a ``Location`` whose
``DELETE`` ends the session). The lecturer loops the pre-encoded clip of ``load/clip.py``; a viewer
counts SRTP packets per SSRC at its socket (``load/counting.py``), never decrypting or decoding,
and tells audio from video by the SSRCs the server's answer declares.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.sdp import SessionDescription
from load.clip import Clip, ClipTrack
from load.counting import StreamCount, count_at_socket

HTTP_TIMEOUT = 15.0
CLOSE_TIMEOUT = 5.0
KINDS = ("audio", "video")


class SessionRefused(Exception):
    """The server did not answer the offer with 201."""


def _new_pc() -> RTCPeerConnection:
    # One transport for both sections: half the ICE and DTLS work per viewer.
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


def prefer_codec(transceiver: RTCRtpTransceiver, mime_type: str, *, sending: bool) -> None:
    """Offer only ``mime_type`` (and its retransmission format) on a video section."""
    capabilities = (RTCRtpSender if sending else RTCRtpReceiver).getCapabilities("video")
    assert capabilities is not None
    transceiver.setCodecPreferences(
        [c for c in capabilities.codecs if c.mimeType in (mime_type, "video/rtx")]
    )


async def exchange(
    http: aiohttp.ClientSession, url: str, token: str, offer: str
) -> tuple[str, str]:
    """POST an offer as ``application/sdp`` with a bearer token; returns (answer, session URL)."""
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    async with http.post(
        url, data=offer, headers=headers, timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
    ) as response:
        body = await response.text()
        if response.status != 201:
            raise SessionRefused(f"POST {url}: {response.status} {body.strip()[:200]}")
        location = response.headers.get("Location")
        if not location:
            raise SessionRefused(f"POST {url}: 201 without a Location header")
        return body, urljoin(url, location)


async def end_session(http: aiohttp.ClientSession, location: str | None, token: str) -> None:
    """DELETE the session resource (with the token that created it), quietly and bounded in
    time."""
    if location is None:
        return
    with contextlib.suppress(Exception):
        async with http.delete(
            location,
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=CLOSE_TIMEOUT),
        ) as response:
            await response.read()


@dataclass
class WhipPublisher:
    """The lecturer: sendonly Opus and video from the looped clip, published over WHIP."""

    http: aiohttp.ClientSession
    url: str
    "``{origin}/whip/{room}``."
    token: str
    "The room password (or a chair/participant invite)."
    clip: Clip
    pc: RTCPeerConnection | None = None
    location: str | None = None
    "The session URL from the 201 answer."
    _senders: dict[str, RTCRtpSender] = field(default_factory=dict)

    async def publish(self, timeout: float) -> None:
        """Offer, exchange, and wait until the connection is up (raises on failure or timeout)."""
        await asyncio.wait_for(self._publish(), timeout)

    async def _publish(self) -> None:
        pc = self.pc = _new_pc()
        audio = pc.addTransceiver(ClipTrack("audio", self.clip.audio), direction="sendonly")
        video = pc.addTransceiver(ClipTrack("video", self.clip.video), direction="sendonly")
        prefer_codec(video, self.clip.video_codec, sending=True)
        await pc.setLocalDescription(await pc.createOffer())
        answer, self.location = await exchange(
            self.http, f"{self.url}?name=Lecturer", self.token, pc.localDescription.sdp
        )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        self._senders = {"audio": audio.sender, "video": video.sender}
        while pc.connectionState != "connected":
            if pc.connectionState in ("failed", "closed"):
                raise RuntimeError(f"WHIP connection {pc.connectionState}")
            await asyncio.sleep(0.05)

    async def sent(self) -> dict[str, dict[str, int]]:
        """kind -> packets and bytes sent so far (aiortc's outbound-rtp stats)."""
        result = {}
        for kind, sender in self._senders.items():
            figures = {"packets": 0, "bytes": 0}
            with contextlib.suppress(Exception):
                for stats in (await sender.getStats()).values():
                    if getattr(stats, "type", "") == "outbound-rtp":
                        figures = {"packets": stats.packetsSent, "bytes": stats.bytesSent}
            result[kind] = figures
        return result

    async def close(self) -> None:
        """End the WHIP session and close the connection."""
        await end_session(self.http, self.location, self.token)
        if self.pc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pc.close(), CLOSE_TIMEOUT)


def declared_ssrcs(answer: str) -> dict[int, tuple[str, bool]]:
    """SSRC -> (kind, is_retransmission) for every SSRC an SDP's media sections declare."""
    found: dict[int, tuple[str, bool]] = {}
    for media in SessionDescription.parse(answer).media:
        rtx = {
            int(group.items[1])
            for group in media.ssrc_group
            if group.semantic == "FID" and len(group.items) > 1
        }
        for ssrc in media.ssrc:
            found[ssrc.ssrc] = (media.kind, ssrc.ssrc in rtx)
    return found


@dataclass
class WhepViewer:
    """A viewer: recvonly audio + video over WHEP, counting packets at its socket."""

    name: str
    http: aiohttp.ClientSession
    url: str
    "``{origin}/whep/{room}``."
    token: str
    "The viewer password."
    video_codec: str
    "The only video format offered (``video/H264`` or ``video/VP8``): the lecturer's."
    clock: Any = time.monotonic
    pc: RTCPeerConnection | None = None
    location: str | None = None
    started_at: float | None = None
    ready_s: float | None = None
    "Seconds from the offer to a packet of both kinds."
    error: str | None = None
    streams: dict[int, StreamCount] = field(default_factory=dict)
    "Packets received per SSRC, counted at the socket."
    ssrc_kinds: dict[int, tuple[str, bool]] = field(default_factory=dict)
    "SSRC -> (kind, is_retransmission), from the answer."
    _wrapped: set[int] = field(default_factory=set)

    async def watch(self, timeout: float) -> None:
        """Join and wait (bounded) until audio and video arrive; a failure is kept in ``error``."""
        self.started_at = self.clock()
        try:
            await asyncio.wait_for(self._watch(), timeout)
        except TimeoutError:
            state = self.pc.connectionState if self.pc is not None else "not created"
            got = sorted(self._seen())
            self.error = (
                f"no audio and video within {timeout:g} s (connection {state},"
                f" received: {', '.join(got) or 'nothing'}, {len(self.streams)} SSRCs seen)"
            )
        except Exception as exc:  # one viewer's failure is a figure of the run, not a crash
            self.error = f"{type(exc).__name__}: {exc}"
        else:
            self.ready_s = self.clock() - self.started_at

    async def _watch(self) -> None:
        pc = self.pc = _new_pc()
        pc.addTransceiver("audio", direction="recvonly")
        prefer_codec(
            pc.addTransceiver("video", direction="recvonly"), self.video_codec, sending=False
        )
        await pc.setLocalDescription(await pc.createOffer())
        # The sockets exist once gathering is done: count from the first packet on.
        count_at_socket(pc, self.streams, self.clock, pass_through=False, wrapped=self._wrapped)
        answer, self.location = await exchange(
            self.http, self.url, self.token, pc.localDescription.sdp
        )
        self.ssrc_kinds = declared_ssrcs(answer)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        while self.receiving() < len(KINDS):
            if pc.connectionState in ("failed", "closed"):
                raise RuntimeError(f"WHEP connection {pc.connectionState}")
            await asyncio.sleep(0.05)

    def receiving(self) -> int:
        """How many kinds (audio, video) have delivered at least one media packet."""
        return len(self._seen() & set(KINDS))

    def _seen(self) -> set[str]:
        """Kinds of the declared, non-retransmission SSRCs that have delivered a packet."""
        return {
            self.ssrc_kinds[ssrc][0]
            for ssrc in self.streams
            if ssrc in self.ssrc_kinds and not self.ssrc_kinds[ssrc][1]
        }

    def counts(self) -> dict[str, list[int]]:
        """Totals so far: kind -> [packets, expected, bytes]; ``rtx`` and ``other`` -> [packets,
        0, bytes] (retransmissions, and SSRCs the answer did not declare)."""
        totals = {key: [0, 0, 0] for key in (*KINDS, "rtx", "other")}
        for ssrc, stream in list(self.streams.items()):
            kind, rtx = self.ssrc_kinds.get(ssrc, ("other", False))
            row = totals["rtx" if rtx else kind if kind in KINDS else "other"]
            row[0] += stream.packets
            row[1] += stream.expected if not rtx and kind in KINDS else 0
            row[2] += stream.bytes
        return totals

    async def close(self) -> None:
        """End the WHEP session and close the connection."""
        await end_session(self.http, self.location, self.token)
        if self.pc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pc.close(), CLOSE_TIMEOUT)
