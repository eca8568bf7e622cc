"""WHIP publishers and WHEP viewers as aiortc peers, the way broadcasting tools and players act."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urljoin

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


MAX_REDIRECTS = 3


async def post_sdp(
    url: str, sdp: str, token: str | None, content_type: str = "application/sdp"
) -> tuple[int, str, dict[str, str]]:
    """POST an offer; (status, body, headers). A ``307``/``308`` is followed with the same
    body and headers, bearer token included, as GStreamer's WHEP/WHIP elements do (aiohttp's
    own redirects drop the token when the origin changes, as browsers do)."""
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as session:
        for _ in range(MAX_REDIRECTS + 1):
            async with session.post(
                url, data=sdp.encode(), headers=headers, allow_redirects=False
            ) as r:
                if r.status in (307, 308) and "Location" in r.headers:
                    url = urljoin(url, r.headers["Location"])
                    continue
                return r.status, await r.text(), dict(r.headers)
    raise RuntimeError(f"more than {MAX_REDIRECTS} redirects from {url}")


async def delete(url: str, token: str | None = None) -> int:
    """``DELETE`` a session URL, with the bearer token that created it (when given)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as session, session.delete(url, headers=headers) as r:
        return r.status


@dataclass
class WhipPublisher:
    """Publishes tracks to ``POST /whip/{room}`` as OBS or GStreamer would."""

    base_url: str
    room: str
    token: str
    pc: RTCPeerConnection = field(default_factory=new_pc)
    location: str | None = None

    async def publish(
        self, tracks: list[MediaStreamTrack], video_codec: str = "video/H264", name: str = ""
    ) -> tuple[int, str]:
        for track in tracks:
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            if track.kind == "video":
                caps = RTCRtpSender.getCapabilities("video").codecs
                transceiver.setCodecPreferences(
                    [c for c in caps if c.mimeType == video_codec]
                    + [c for c in caps if c.mimeType != video_codec]
                )
        await self.pc.setLocalDescription(await self.pc.createOffer())
        query = f"?name={name}" if name else ""
        status, body, headers = await post_sdp(
            f"{self.base_url}/whip/{self.room}{query}", self.pc.localDescription.sdp, self.token
        )
        if status == 201:
            self.location = headers["Location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        return status, body

    async def stop(self) -> int | None:
        status = await delete(self.base_url + self.location, self.token) if self.location else None
        await self.pc.close()
        return status


@dataclass
class Received:
    """What one receiving section decoded."""

    kind: str
    frames: int = 0
    last_frame: Any = None


@dataclass
class WhepViewer:
    """Plays ``POST /whep/{room}``: recvonly sections, decoded frames counted per section."""

    base_url: str
    room: str
    token: str
    pc: RTCPeerConnection = field(default_factory=new_pc)
    location: str | None = None
    received: list[Received] = field(default_factory=list)
    tracks: list[MediaStreamTrack] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def play(self, audio: int = 1, video: int = 1, name: str = "") -> tuple[int, str]:
        """Offer ``audio`` and ``video`` receive-only sections; ``name`` goes as ``?name=``."""
        for _ in range(audio):
            self.pc.addTransceiver("audio", direction="recvonly")
        for _ in range(video):
            self.pc.addTransceiver("video", direction="recvonly")
        self.pc.on("track", self._on_track)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        query = f"?{urlencode({'name': name})}" if name else ""
        status, body, headers = await post_sdp(
            f"{self.base_url}/whep/{self.room}{query}", self.pc.localDescription.sdp, self.token
        )
        if status == 201:
            self.location = headers["Location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        return status, body

    def section(self, kind: str, index: int) -> Received | None:
        """The ``index``-th receiving section of ``kind`` (in offer order)."""
        transceivers = [t for t in self.pc.getTransceivers() if t.kind == kind]
        if index >= len(transceivers):
            return None
        track = transceivers[index].receiver.track
        pairs = zip(self.received, self.tracks, strict=True)
        return next((r for r, t in pairs if t is track), None)

    def frames(self, kind: str) -> int:
        return sum(r.frames for r in self.received if r.kind == kind)

    def _on_track(self, track: MediaStreamTrack) -> None:
        received = Received(track.kind)
        self.received.append(received)
        self.tracks.append(track)
        self._tasks.append(asyncio.create_task(self._consume(track, received)))

    async def _consume(self, track: MediaStreamTrack, received: Received) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                received.last_frame = await track.recv()
                received.frames += 1

    async def wait_until(self, condition: Any, timeout: float = 20) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("condition not met in time")
            await asyncio.sleep(0.1)

    async def stop(self) -> int | None:
        for task in self._tasks:
            task.cancel()
        # A Location is relative on a single server, absolute on the node that serves it.
        url = urljoin(self.base_url + "/", self.location) if self.location else None
        status = await delete(url, self.token) if url else None
        await self.pc.close()
        return status


def mean_colour(frame: Any) -> tuple[float, float, float]:
    """The mean RGB of a decoded video frame."""
    rgb = frame.to_ndarray(format="rgb24")
    r, g, b = (float(c) for c in rgb.reshape(-1, 3).mean(axis=0))
    return r, g, b


def near(colour: tuple[float, float, float], target: tuple[int, int, int]) -> bool:
    """Whether a decoded colour is the solid colour sent (codecs shift it a little)."""
    return all(abs(a - b) < 40 for a, b in zip(colour, target, strict=True))
