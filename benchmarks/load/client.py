"""One lightweight participant of a load test: a publisher or a counting subscriber.

It speaks the real protocol (``docs/protocol.md``) over ``/ws`` and real WebRTC (aiortc) to the
server. Publishers loop the shared pre-encoded clip (``clip.py``); subscribers complete ICE and
DTLS and count SRTP packets per SSRC at the socket (``counting.py``); only the few decoding
subscribers (``--decode-sample``) let aiortc decrypt and decode, to prove the media is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.sdp import SessionDescription

from .clip import Clip, ClipTrack, SpeakerTrack
from .counting import StreamCount, count_at_socket

PUBLISHER, AUDIO_PUBLISHER, SUBSCRIBER = "publisher", "audio_publisher", "subscriber"
REQUEST_TIMEOUT = 20.0


@dataclass(frozen=True)
class TrackInfo:
    """A server track as a subscribe offer describes it."""

    track_id: str
    "Server-assigned track id, unique in the room."
    participant_id: str
    "Who publishes it."
    kind: str
    "``audio`` or ``video``."


@dataclass
class ClientSpec:
    """Who a client is and what it does."""

    name: str
    "Display name, unique in the run (``r0-sub3``)."
    role: str
    "``publisher`` (video and audio), ``audio_publisher`` or ``subscriber``."
    room_id: str
    "The room to join."
    password: str
    "The room's password."
    decode: bool = False
    "A subscriber that lets aiortc decrypt and decode what it receives."
    speaker_slot: int | None = None
    "For a speaking publisher: its slot in the loud/quiet rotation."
    speakers: int = 0
    "How many speakers the rotation has."
    expected_tracks: int = 0
    "For a subscriber: tracks it should receive (ready once each has delivered a packet)."


@dataclass
class LoadClient:
    """A participant driven by the load test; everything it saw is kept for the report."""

    spec: ClientSpec
    ws_url: str
    clip: Clip
    clock: Any = time.monotonic
    errors: list[str] = field(default_factory=list)
    participant_id: str | None = None
    started_at: float | None = None
    joined_s: float | None = None
    "Seconds from connecting the socket to the ``joined`` reply."
    ready_s: float | None = None
    "Seconds from connecting to media: publish connection up, or a packet of every track."
    published: dict[str, str] = field(default_factory=dict)
    "kind -> track id of what this client publishes."
    streams: dict[int, StreamCount] = field(default_factory=dict)
    "SRTP packets received per SSRC (subscribers)."
    ssrc_tracks: dict[int, tuple[TrackInfo, bool]] = field(default_factory=dict)
    "SSRC -> (track, is_retransmission_stream), from the subscribe offers."
    frames: dict[str, int] = field(default_factory=dict)
    "Frames decoded per track id (decoding subscribers)."
    frame_sizes: dict[str, str] = field(default_factory=dict)
    "Picture size of the last decoded video frame per track id."
    speaker_changes: int = 0
    "``active_speaker`` events received."
    session_token: str | None = None
    "The ``joined`` reply's token (document uploads)."
    on_event: Callable[[dict[str, Any]], None] | None = None
    "Called with every server message that is not a reply (room events)."
    closing: bool = False
    _session: aiohttp.ClientSession | None = None
    _ws: aiohttp.ClientWebSocketResponse | None = None
    _reader: asyncio.Task[None] | None = None
    _replies: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _next_id: int = 0
    _ice_servers: list[RTCIceServer] = field(default_factory=list)
    _publish_pc: RTCPeerConnection | None = None
    _subscribe_pc: RTCPeerConnection | None = None
    _mid_tracks: dict[str, TrackInfo] = field(default_factory=dict)
    _wrapped: set[int] = field(default_factory=set)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _senders: dict[str, RTCRtpSender] = field(default_factory=dict)

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, ready_timeout: float) -> None:
        """Join, publish or subscribe, and wait (bounded) until media flows; errors are kept."""
        try:
            await asyncio.wait_for(self._start(), ready_timeout)
        except TimeoutError:
            self.errors.append(f"not ready within {ready_timeout:.0f} s")
        except Exception as exc:  # one client's failure is a figure of the run, not a crash
            self.errors.append(f"{type(exc).__name__}: {exc}")

    async def _start(self) -> None:
        self.started_at = self.clock()
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.ws_url, heartbeat=20)
        self._reader = asyncio.create_task(self._read())
        reply = await self.request(
            {
                "type": "join",
                "room": self.spec.room_id,
                "name": self.spec.name,
                "password": self.spec.password,
            }
        )
        if reply["type"] != "joined":
            raise RuntimeError(f"join refused: {reply.get('code')} {reply.get('message')}")
        self.joined_s = self.clock() - self.started_at
        self.participant_id = reply["participant"]["id"]
        self.session_token = reply.get("session_token")
        self._ice_servers = [
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in reply.get("ice_servers", [])
        ]
        if self.spec.role == SUBSCRIBER:
            await self._wait_for_media()
        else:
            await self.send({"type": "subscription", "sources": []})  # publishers only send
            await self._publish()
        self.ready_s = self.clock() - self.started_at

    async def close(self, *, leave: bool = True) -> None:
        """Leave and close everything, bounded in time; ``leave=False`` drops the socket without
        saying goodbye, as a crashed browser or a lost network does."""
        self.closing = True
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            if leave and self._ws is not None and not self._ws.closed:
                await asyncio.wait_for(self.send({"type": "leave"}), 2)
        for pc in (self._publish_pc, self._subscribe_pc):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pc.close(), 5)
        with contextlib.suppress(Exception):
            if self._ws is not None:
                await asyncio.wait_for(self._ws.close(), 2)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self._session is not None:
            await self._session.close()

    # -- signalling --------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        """Send one protocol message (no reply awaited)."""
        assert self._ws is not None
        await self._ws.send_str(json.dumps(message))

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message`` with a fresh id and wait (bounded) for the reply carrying it."""
        self._next_id += 1
        request_id = f"r{self._next_id}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = future
        await self.send(message | {"id": request_id})
        return await asyncio.wait_for(future, REQUEST_TIMEOUT)

    async def _read(self) -> None:
        assert self._ws is not None
        async for frame in self._ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            kind = message.get("type")
            future = self._replies.pop(str(message.get("id")), None)
            if future is None and self.on_event is not None:
                self.on_event(message)
            if future is not None and not future.done():
                future.set_result(message)
            elif kind == "error":
                self.errors.append(f"server error {message.get('code')}: {message.get('message')}")
            elif kind == "subscribe_offer":
                try:
                    await self._answer(message)
                except Exception as exc:
                    if not self.closing:  # an offer crossing our leave is no failure
                        self.errors.append(f"answering a subscribe offer: {exc!r}")
            elif kind == "active_speaker":
                self.speaker_changes += 1
            elif kind in ("removed", "room_ended"):
                self.errors.append(f"{kind}: {message.get('reason')}")
        if not self.closing:
            self.errors.append("the server closed the socket")

    # -- publishing --------------------------------------------------------------------------

    async def _publish(self) -> None:
        pc = self._publish_pc = self._new_pc()
        tracks: list[tuple[str, MediaStreamTrack]] = []
        if self.spec.speaker_slot is not None:
            tracks.append(("microphone", SpeakerTrack(self.spec.speaker_slot, self.spec.speakers)))
        else:
            tracks.append(("microphone", ClipTrack("audio", self.clip.audio)))
        if self.spec.role == PUBLISHER:
            tracks.append(("camera", ClipTrack("video", self.clip.video)))
        listed = []
        for source, track in tracks:
            transceiver = pc.addTransceiver(track, direction="sendonly")
            if track.kind == "video":
                codecs = RTCRtpSender.getCapabilities("video").codecs
                transceiver.setCodecPreferences(
                    [c for c in codecs if c.mimeType in (self.clip.video_codec, "video/rtx")]
                )
            listed.append((transceiver, source))
        await pc.setLocalDescription(await pc.createOffer())
        reply = await self.request(
            {
                "type": "publish",
                "sdp": pc.localDescription.sdp,
                "tracks": [{"mid": t.mid, "source": s} for t, s in listed],
            }
        )
        if reply["type"] != "publish_answer":
            raise RuntimeError(f"publish refused: {reply.get('code')} {reply.get('message')}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
        ids = {t["mid"]: t["track_id"] for t in reply["tracks"]}
        for transceiver, _ in listed:
            kind = transceiver.kind
            self.published[kind] = ids.get(transceiver.mid or "", "?")
            self._senders[kind] = transceiver.sender
        for _ in range(100_000):
            if pc.connectionState == "connected":
                return
            if pc.connectionState in ("failed", "closed"):
                raise RuntimeError(f"publish connection {pc.connectionState}")
            await asyncio.sleep(0.05)

    async def sent(self) -> dict[str, tuple[int, int]]:
        """kind -> (packets, bytes) sent so far by this publisher's senders."""
        result = {}
        for kind, sender in self._senders.items():
            packets = octets = 0
            with contextlib.suppress(Exception):
                for stats in (await sender.getStats()).values():
                    if getattr(stats, "type", "") == "outbound-rtp":
                        packets, octets = stats.packetsSent, stats.bytesSent
            result[kind] = (packets, octets)
        return result

    # -- subscribing -------------------------------------------------------------------------

    async def _answer(self, offer: dict[str, Any]) -> None:
        tracks = {
            t["mid"]: TrackInfo(t["track_id"], t["participant_id"], t["kind"])
            for t in offer["tracks"]
        }
        self._mid_tracks.update(tracks)
        for media in SessionDescription.parse(offer["sdp"]).media:
            info = tracks.get(media.rtp.muxId)
            if info is None:
                continue
            rtx = {
                int(g.items[1])
                for g in media.ssrc_group
                if g.semantic == "FID" and len(g.items) > 1
            }
            for ssrc in media.ssrc:
                self.ssrc_tracks[ssrc.ssrc] = (info, ssrc.ssrc in rtx)
        if self._subscribe_pc is None:
            self._subscribe_pc = self._new_pc()
            if self.spec.decode:
                self._subscribe_pc.on("track", self._on_track)
        pc = self._subscribe_pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        # The sockets exist once gathering is done: count from the first packet on.
        count_at_socket(
            pc, self.streams, self.clock, pass_through=self.spec.decode, wrapped=self._wrapped
        )
        await self.send({"type": "subscribe_answer", "sdp": pc.localDescription.sdp})

    def receiving(self) -> int:
        """Tracks of which at least one (non-retransmission) packet has arrived."""
        return len(
            {
                info.track_id
                for ssrc, (info, rtx) in self.ssrc_tracks.items()
                if not rtx and ssrc in self.streams
            }
        )

    async def _wait_for_media(self) -> None:
        for _ in range(1_000_000):
            if self.receiving() >= self.spec.expected_tracks:
                return
            await asyncio.sleep(0.02)

    def _on_track(self, track: MediaStreamTrack) -> None:
        assert self._subscribe_pc is not None
        transceiver = next(
            t for t in self._subscribe_pc.getTransceivers() if t.receiver.track is track
        )
        info = self._mid_tracks.get(transceiver.mid or "")
        track_id = info.track_id if info else f"mid{transceiver.mid}"
        self._tasks.append(asyncio.create_task(self._decode(track, track_id)))

    async def _decode(self, track: MediaStreamTrack, track_id: str) -> None:
        with contextlib.suppress(MediaStreamError):
            for _ in range(100_000_000):
                frame = await track.recv()
                self.frames[track_id] = self.frames.get(track_id, 0) + 1
                if track.kind == "video":
                    self.frame_sizes[track_id] = f"{frame.width}x{frame.height}"

    def _new_pc(self) -> RTCPeerConnection:
        return RTCPeerConnection(
            RTCConfiguration(iceServers=self._ice_servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
