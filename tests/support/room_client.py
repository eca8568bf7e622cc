"""A Python room client over the real protocol (aiortc peer connections), for tests.

It publishes synthetic media (a coloured picture, a tone) and decodes what it receives, so a test
can check that media really flowed end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidStateError
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy

VIDEO_CLOCK = 90000
AUDIO_RATE = 48000


class ColourTrack(MediaStreamTrack):
    """A video track of a solid colour (with a moving bar so the encoder sends real deltas)."""

    kind = "video"

    def __init__(
        self, colour: tuple[int, int, int], width: int = 320, height: int = 240, fps: int = 15
    ):
        super().__init__()
        self.colour = colour
        self.width, self.height, self.fps = width, height, fps
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._count / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        image = np.empty((self.height, self.width, 3), dtype=np.uint8)
        image[:] = self.colour
        x = (self._count * 4) % self.width
        image[:, x : x + 8] = 255 - np.array(self.colour, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self._count * VIDEO_CLOCK // self.fps
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._count += 1
        return frame


class ToneTrack(MediaStreamTrack):
    """An audio track playing a sine tone (loud enough to count as speech)."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0, amplitude: float = 0.3):
        super().__init__()
        self.frequency, self.amplitude = frequency, amplitude
        self._samples = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        n = AUDIO_RATE // 50
        due = self._start + self._samples / AUDIO_RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        t = (np.arange(n) + self._samples) / AUDIO_RATE
        pcm = (np.sin(2 * math.pi * self.frequency * t) * self.amplitude * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._samples += n
        return frame


@dataclass(frozen=True)
class DecodedPicture:
    """One decoded video frame, with the RTP time it carried and when the client decoded it."""

    rtp_time: int
    "The frame's RTP timestamp (the sender's 90 kHz media clock, offset by the server)."
    decoded_at: float
    "``time.monotonic()`` when ``recv()`` returned it."
    frame: av.VideoFrame


@dataclass
class ReceivedTrack:
    """A track this client receives, and what it decoded of it."""

    track_id: str
    participant_id: str
    kind: str
    source: str
    frames: int = 0
    last_frame: Any = None
    ended: bool = False
    audio: list[Any] = field(default_factory=list)
    "The last few seconds of decoded audio (mono float arrays), for spectrum checks."
    pictures: deque[DecodedPicture] = field(default_factory=lambda: deque(maxlen=8))
    "The last few decoded video frames, oldest first (which frame showed what, and when)."


@dataclass
class RoomClient:
    """One participant, driven by a test."""

    ws_url: str
    name: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    received: dict[str, ReceivedTrack] = field(default_factory=dict)
    participant_id: str | None = None
    publish_pc: RTCPeerConnection | None = None
    subscribe_pc: RTCPeerConnection | None = None
    relay_only: bool = False
    "Reach the server only through the TURN relay ``joined`` hands out (as ``?ice=relay``)."
    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    "``joined.ice_servers``: what the connections use, as a browser would."
    resume_token: str | None = None
    "``joined.resume_token``: what resumes the session after a lost connection."
    _session: aiohttp.ClientSession | None = None
    _ws: aiohttp.ClientWebSocketResponse | None = None
    _reader: asyncio.Task[None] | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _mid_tracks: dict[str, dict[str, Any]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _next_id: int = 0
    _published: list[tuple[Any, str]] = field(default_factory=list)

    async def connect(self) -> None:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.ws_url)
        self._reader = asyncio.create_task(self._read())

    async def send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps(message))

    async def send_raw(self, text: str) -> None:
        assert self._ws is not None
        await self._ws.send_str(text)

    async def request(self, message: dict[str, Any], timeout: float = 20) -> dict[str, Any]:
        """Send a message with an id and wait for the reply (or error) carrying that id."""
        self._next_id += 1
        request_id = f"r{self._next_id}"
        await self.send(message | {"id": request_id})
        return await self.wait_for(lambda m: m.get("id") == request_id, timeout)

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        """The first message (already received or coming) that satisfies ``predicate``."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: any(predicate(m) for m in self.messages)), timeout
            )
            return next(m for m in self.messages if predicate(m))

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 20) -> None:
        """Wait (bounded) until ``condition`` holds, re-checked on every message and frame."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met in time")
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.25)

    async def join(
        self,
        room: str,
        password: str | None = None,
        invite: str | None = None,
        media: str | None = None,
        e2ee: bool = False,
    ) -> dict[str, Any]:
        """Join ``room``; ``e2ee``: say the client encrypts (an end-to-end encrypted room)."""
        message: dict[str, Any] = {"type": "join", "room": room, "name": self.name}
        if e2ee:
            message["e2ee"] = True
        if password is not None:
            message["password"] = password
        if invite is not None:
            message["invite"] = invite
        if media is not None:
            message["media"] = media
        reply = await self.request(message)
        if reply["type"] == "joined":
            self.participant_id = reply["participant"]["id"]
            if media != "none":
                self._subscriber()
        return reply

    def _subscriber(self) -> RTCPeerConnection:
        # The first subscribe_offer may be read before join() resumes: create on first use.
        if self.subscribe_pc is None:
            self.subscribe_pc = _new_pc(self.ice_servers, self.relay_only)
            self.subscribe_pc.on("track", self._on_track)
        return self.subscribe_pc

    async def publish(
        self,
        tracks: dict[str, MediaStreamTrack],
        video_codec: str = "video/VP8",
        *,
        only: bool = False,
    ) -> dict[str, Any]:
        """Publish ``{source: track}`` on a (new or existing) publish connection."""
        if self.publish_pc is None:
            self.publish_pc = _new_pc(self.ice_servers, self.relay_only)
        pc = self.publish_pc
        specs = self._published
        for source, track in tracks.items():
            transceiver = pc.addTransceiver(track, direction="sendonly")
            if track.kind == "video":
                caps = RTCRtpSender.getCapabilities("video").codecs
                preferred = [c for c in caps if c.mimeType == video_codec]
                rest = [c for c in caps if c.mimeType != video_codec]
                if only:  # offer this codec alone (plus RTX)
                    rest = [c for c in rest if c.mimeType == "video/rtx"]
                transceiver.setCodecPreferences(preferred + rest)
            specs.append((transceiver, source))
        await pc.setLocalDescription(await pc.createOffer())
        reply = await self.request(
            {
                "type": "publish",
                "sdp": pc.localDescription.sdp,
                "tracks": [{"mid": t.mid, "source": s} for t, s in specs],
            }
        )
        if reply["type"] == "publish_answer":
            await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
        return reply

    def frames_from(self, participant_id: str, kind: str) -> int:
        return sum(
            t.frames
            for t in self.received.values()
            if t.participant_id == participant_id and t.kind == kind
        )

    async def _read(self) -> None:
        assert self._ws is not None
        async for frame in self._ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            if message.get("type") == "joined":
                self.ice_servers = message.get("ice_servers", [])
                self.resume_token = message.get("resume_token")
            if message.get("type") == "subscribe_offer":
                try:
                    await self._answer(message)
                except (aiohttp.ClientError, ConnectionError):
                    pass  # the socket is closing; the close is recorded below
                except InvalidStateError:
                    pass  # our connection died (e.g. ICE consent expired): the server ends us
            async with self._changed:
                self.messages.append(message)
                self._changed.notify_all()
        async with self._changed:
            self.messages.append({"type": "_socket_closed"})
            self._changed.notify_all()

    async def _answer(self, offer: dict[str, Any]) -> None:
        for t in offer["tracks"]:
            self._mid_tracks[t["mid"]] = t
        pc = self._subscriber()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await self.send({"type": "subscribe_answer", "sdp": pc.localDescription.sdp})

    def _on_track(self, track: MediaStreamTrack) -> None:
        assert self.subscribe_pc is not None
        transceiver = next(
            t for t in self.subscribe_pc.getTransceivers() if t.receiver.track is track
        )
        info = self._mid_tracks.get(transceiver.mid or "", {})
        received = ReceivedTrack(
            track_id=info.get("track_id", f"mid{transceiver.mid}"),
            participant_id=info.get("participant_id", "?"),
            kind=track.kind,
            source=info.get("source", "?"),
        )
        self.received[received.track_id] = received
        self._tasks.append(asyncio.create_task(self._consume(track, received)))

    async def _consume(self, track: MediaStreamTrack, received: ReceivedTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                received.frames += 1
                received.last_frame = frame
                if isinstance(frame, av.VideoFrame):
                    pts = frame.pts if frame.pts is not None else -1
                    received.pictures.append(DecodedPicture(pts, time.monotonic(), frame))
                if received.kind == "audio":
                    samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))
                    received.audio.append(samples.mean(axis=1))
                    del received.audio[:-150]
                async with self._changed:
                    self._changed.notify_all()
        except MediaStreamError:
            received.ended = True
            async with self._changed:
                self._changed.notify_all()

    async def drop(self) -> None:
        """Lose the connection as an outage would: no ``leave``; the socket and both peer
        connections end. The messages received so far are kept."""
        await self._teardown()
        self._session = self._ws = None
        self._reader = None
        self.publish_pc = self.subscribe_pc = None
        self._published = []
        self._tasks = []

    async def resume(self, room: str, media: str | None = None) -> dict[str, Any]:
        """Come back as the same participant on a new socket (``join`` with ``resume``); the
        next ``publish`` brings the tracks back."""
        await self.connect()
        assert self.participant_id is not None and self.resume_token is not None
        message: dict[str, Any] = {
            "type": "join",
            "room": room,
            "resume": {"participant_id": self.participant_id, "token": self.resume_token},
        }
        if media is not None:
            message["media"] = media
        reply = await self.request(message)
        if reply["type"] == "joined" and media != "none":
            self._subscriber()
        return reply

    async def close(self) -> None:
        """Leave (as a person does: a ``leave``, so the server does not wait for a resume) and
        end the socket and both connections."""
        if self._ws is not None and not self._ws.closed and self.participant_id is not None:
            with contextlib.suppress(Exception):
                await self.send({"type": "leave"})
        await self._teardown()

    async def _teardown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for pc in (self.publish_pc, self.subscribe_pc):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await pc.close()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
        if self._session is not None:
            await self._session.close()


async def joined_client(server: Any, name: str, room: str = "cardio-1", **join: str) -> RoomClient:
    """A connected client that has joined ``room`` (with a password or an invite)."""
    client = RoomClient(server.ws_url, name)
    await client.connect()
    reply = await client.join(room, **join)
    assert reply["type"] == "joined", reply
    return client


def local_candidate_types(pc: RTCPeerConnection) -> set[str]:
    """The types of the candidates ``pc`` gathered ("host", "srflx", "relay")."""
    return {
        candidate.type
        for transceiver in pc.getTransceivers()
        if transceiver.receiver.transport is not None
        for candidate in transceiver.receiver.transport.transport.iceGatherer.getLocalCandidates()
    }


def _new_pc(ice_servers: list[dict[str, Any]], relay_only: bool = False) -> RTCPeerConnection:
    # As a browser: the servers `joined` handed out (none unless the server has some).
    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in ice_servers
    ]
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    return RTCPeerConnection(
        RTCConfiguration(
            iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE, iceTransportPolicy=policy
        )
    )
