"""Load clients for Janus's VideoRoom plugin over its HTTP API (REST + long poll).

The same participants as ``client.py`` but against Janus 1.x, so that one scenario can be run
against both servers and printed by the same report code (``report.subscriber_rows`` reads a
``JanusClient`` exactly as it reads a ``LoadClient``). Publishers loop the shared pre-encoded clip
(``clip.py``); subscribers answer Janus's offer and count SRTP packets at the socket without
decrypting (``counting.py``).

Flow (one Janus session per client, as a browser would have):
``POST /janus {"janus": "create"}`` -> session; ``attach`` ``janus.plugin.videoroom`` -> handle;
publisher: ``join`` (``ptype: publisher``) then ``publish`` with the offer, Janus's answer comes
back as an event; subscriber: ``join`` (``ptype: subscriber``, ``streams: [{feed}]``), Janus's
offer comes back as an event, ``start`` with the answer. Events arrive on the session's long
poll (``GET /janus/<session>``), which also keeps the session alive; a ``keepalive`` is sent
every ``KEEPALIVE_S`` as well. Janus gathers no candidate on ``lo``: the clients must run in the
same network namespace and gather on the same address (``mcu.sfu.ice.install``), see
``benchmarks/janus/run-janus.sh``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.sdp import SessionDescription

from .client import PUBLISHER, SUBSCRIBER, ClientSpec, TrackInfo
from .clip import Clip, ClipTrack
from .counting import StreamCount, count_at_socket

PLUGIN = "janus.plugin.videoroom"
REQUEST_TIMEOUT = 20.0
LONG_POLL_S = 30  # Janus answers an idle long poll after 30 s
KEEPALIVE_S = 25.0
MAX_POLLS = 1_000_000  # bound on the long-poll loop (~1 year idle)


class JanusError(RuntimeError):
    """An error reply from Janus or its VideoRoom plugin."""


def _transaction() -> str:
    return secrets.token_hex(8)


class JanusSession:
    """One Janus session: requests, its long poll and its keep-alives."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base.rstrip("/")
        self.session_id: int | None = None
        self.errors: list[str] = []
        "Events that no request waited for and that mean trouble (hangup, error)."
        self.events: list[dict[str, Any]] = []
        "Every unsolicited event (webrtcup, media, slowlink, ...), for the curious."
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.closing = False

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with self.http.post(f"{self.base}{path}", json=body, timeout=timeout) as response:
            reply: dict[str, Any] = await response.json(content_type=None)
        if reply.get("janus") == "error":
            error = reply.get("error", {})
            raise JanusError(f"janus error {error.get('code')}: {error.get('reason')}")
        return reply

    async def create(self) -> None:
        """Create the session and start its long poll and keep-alives."""
        reply = await self._post("", {"janus": "create", "transaction": _transaction()})
        self.session_id = reply["data"]["id"]
        self._tasks.append(asyncio.create_task(self._poll()))
        self._tasks.append(asyncio.create_task(self._keepalive()))

    async def attach(self) -> int:
        """A new VideoRoom handle in this session."""
        body = {"janus": "attach", "plugin": PLUGIN, "transaction": _transaction()}
        reply = await self._post(f"/{self.session_id}", body)
        return int(reply["data"]["id"])

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A plugin request; returns the plugin's reply (synchronous or the event after ``ack``).

        The returned dict is the whole Janus message: ``plugindata.data`` and maybe ``jsep``.
        """
        transaction = _transaction()
        request: dict[str, Any] = {"janus": "message", "body": body, "transaction": transaction}
        if jsep is not None:
            request["jsep"] = jsep
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = future
        try:
            reply = await self._post(f"/{self.session_id}/{handle}", request)
            if reply.get("janus") != "ack":  # synchronous request (create, destroy, list...)
                result = reply
            else:
                result = await asyncio.wait_for(future, REQUEST_TIMEOUT)
        finally:
            self._waiting.pop(transaction, None)
        data = result.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(f"videoroom error {data.get('error_code')}: {data['error']}")
        return result

    async def _poll(self) -> None:
        """The long poll: up to 10 events per GET, dispatched by transaction."""
        timeout = aiohttp.ClientTimeout(total=LONG_POLL_S + 15)
        failures = 0
        for _ in range(MAX_POLLS):
            if self.closing:
                return
            url = f"{self.base}/{self.session_id}?maxev=10&rid={time.time_ns()}"
            try:
                async with self.http.get(url, timeout=timeout) as response:
                    payload = await response.json(content_type=None)
                failures = 0
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                failures += 1
                if failures >= 5:
                    if not self.closing:
                        self.errors.append(f"long poll failed 5 times: {exc!r}")
                    return
                await asyncio.sleep(0.5)
                continue
            for event in payload if isinstance(payload, list) else [payload]:
                self._dispatch(event)

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("janus")
        if kind == "keepalive":
            return
        future = self._waiting.get(str(event.get("transaction")))
        if future is not None and not future.done() and kind in ("event", "error", "success"):
            if kind == "error":
                error = event.get("error", {})
                future.set_exception(
                    JanusError(f"janus error {error.get('code')}: {error.get('reason')}")
                )
            else:
                future.set_result(event)
            return
        self.events.append(event)
        if kind == "hangup" and not self.closing:
            self.errors.append(f"hangup: {event.get('reason')}")
        elif kind == "error":
            self.errors.append(f"janus error event: {event.get('error')}")

    async def _keepalive(self) -> None:
        for _ in range(MAX_POLLS):
            await asyncio.sleep(KEEPALIVE_S)
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, JanusError):
                await self._post(
                    f"/{self.session_id}", {"janus": "keepalive", "transaction": _transaction()}
                )

    async def destroy(self) -> None:
        """Destroy the session (Janus hangs up its handles) and stop polling."""
        self.closing = True
        if self.session_id is not None:
            with contextlib.suppress(Exception):
                await self._post(
                    f"/{self.session_id}", {"janus": "destroy", "transaction": _transaction()}
                )
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task


async def create_room(
    http: aiohttp.ClientSession, base: str, publishers: int, video_codec: str
) -> tuple[int, JanusSession, int]:
    """Create a VideoRoom for ``publishers`` with the clip's codecs; (room, session, handle).

    Keep the session until :func:`destroy_room`. No bitrate cap (the clip ignores REMB anyway),
    no periodic FIR (the clip has a keyframe every 2 s), not recorded.
    """
    session = JanusSession(http, base)
    await session.create()
    handle = await session.attach()
    room = 10_000_000 + secrets.randbelow(80_000_000)
    codec = {"video/VP8": "vp8", "video/H264": "h264"}[video_codec]
    await session.message(
        handle,
        {
            "request": "create",
            "room": room,
            "description": f"load test {room}",
            "publishers": max(1, publishers),
            "videocodec": codec,
            "audiocodec": "opus",
            "bitrate": 0,
            "fir_freq": 0,
            "record": False,
            "is_private": True,
            "permanent": False,
        },
    )
    return room, session, handle


async def destroy_room(session: JanusSession, handle: int, room: int) -> list[str]:
    """Destroy the room and the session that created it; problems as text."""
    problems = []
    try:
        await session.message(handle, {"request": "destroy", "room": room, "permanent": False})
    except Exception as exc:
        problems.append(f"destroy room {room}: {exc!r}")
    await session.destroy()
    return problems


@dataclass
class JanusClient:
    """A VideoRoom participant with the attributes ``report.subscriber_rows`` reads.

    ``spec.room_id`` is the Janus room number as text; a subscriber's ``spec.password`` is unused.
    Set ``feed`` (the publisher's Janus id) or ``feeds`` (several) before running a subscriber.
    """

    spec: ClientSpec
    http: aiohttp.ClientSession
    base: str
    clip: Clip
    feed: int | None = None
    "Publisher: its own feed id once joined. Subscriber: the feed to subscribe to."
    feeds: list[int] = field(default_factory=list)
    "Subscriber: every feed to subscribe to in one handle (overrides ``feed`` when set)."
    clock: Any = time.monotonic
    errors: list[str] = field(default_factory=list)
    participant_id: str | None = None
    started_at: float | None = None
    joined_s: float | None = None
    "Seconds from the first request to the ``joined``/``attached`` event."
    ready_s: float | None = None
    "Seconds from the first request to media: publish connection up, or a packet of every track."
    published: dict[str, str] = field(default_factory=dict)
    streams: dict[int, StreamCount] = field(default_factory=dict)
    ssrc_tracks: dict[int, tuple[TrackInfo, bool]] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    frame_sizes: dict[str, str] = field(default_factory=dict)
    speaker_changes: int = 0
    closing: bool = False
    _session: JanusSession | None = None
    _handle: int | None = None
    _pc: RTCPeerConnection | None = None
    _wrapped: set[int] = field(default_factory=set)
    _senders: dict[str, RTCRtpSender] = field(default_factory=dict)

    async def run(self, ready_timeout: float) -> None:
        """Join, publish or subscribe, and wait (bounded) until media flows; errors are kept."""
        try:
            await asyncio.wait_for(self._start(), ready_timeout)
        except TimeoutError:
            self.errors.append(f"not ready within {ready_timeout:.0f} s")
        except Exception as exc:  # one client's failure is a figure of the run, not a crash
            self.errors.append(f"{type(exc).__name__}: {exc}")
        if self._session is not None:
            self.errors.extend(self._session.errors)
            self._session.errors.clear()

    async def _start(self) -> None:
        self.started_at = self.clock()
        self._session = JanusSession(self.http, self.base)
        await self._session.create()
        self._handle = await self._session.attach()
        if self.spec.role == SUBSCRIBER:
            await self._subscribe()
        else:
            await self._publish()
        self.ready_s = self.clock() - self.started_at

    async def close(self) -> None:
        """Hang up and destroy the session, bounded in time."""
        self.closing = True
        if self._session is not None:
            self.errors.extend(e for e in self._session.errors if "hangup" not in e)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._session.destroy(), 5)
        if self._pc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pc.close(), 5)

    # -- publishing --------------------------------------------------------------------------

    async def _publish(self) -> None:
        assert self._session is not None and self._handle is not None
        reply = await self._session.message(
            self._handle,
            {
                "request": "join",
                "ptype": "publisher",
                "room": int(self.spec.room_id),
                "display": self.spec.name,
            },
        )
        data = reply["plugindata"]["data"]
        if data.get("videoroom") != "joined":
            raise JanusError(f"join as publisher: {data}")
        self.joined_s = self.clock() - (self.started_at or 0)
        self.feed = int(data["id"])
        self.participant_id = str(self.feed)
        pc = self._pc = self._new_pc()
        transceivers = [pc.addTransceiver(ClipTrack("audio", self.clip.audio), "sendonly")]
        if self.spec.role == PUBLISHER:
            video = pc.addTransceiver(ClipTrack("video", self.clip.video), "sendonly")
            codecs = RTCRtpSender.getCapabilities("video").codecs
            video.setCodecPreferences(
                [c for c in codecs if c.mimeType in (self.clip.video_codec, "video/rtx")]
            )
            transceivers.append(video)
        await pc.setLocalDescription(await pc.createOffer())
        reply = await self._session.message(
            self._handle,
            {"request": "publish", "audio": True, "video": self.spec.role == PUBLISHER},
            {"type": "offer", "sdp": pc.localDescription.sdp},
        )
        jsep = reply.get("jsep")
        if not jsep or jsep.get("type") != "answer":
            raise JanusError(f"publish: no answer in {reply.get('plugindata')}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=jsep["sdp"], type="answer"))
        for transceiver in transceivers:
            self.published[transceiver.kind] = f"{self.feed}-{transceiver.kind}"
            self._senders[transceiver.kind] = transceiver.sender
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

    async def _subscribe(self) -> None:
        assert self._session is not None and self._handle is not None
        feeds = self.feeds or ([self.feed] if self.feed is not None else [])
        if not feeds:
            raise ValueError("a subscriber needs the feed to subscribe to")
        self.feed = feeds[0]
        reply = await self._session.message(
            self._handle,
            {
                "request": "join",
                "ptype": "subscriber",
                "room": int(self.spec.room_id),
                "streams": [{"feed": feed} for feed in feeds],
            },
        )
        data = reply["plugindata"]["data"]
        jsep = reply.get("jsep")
        if data.get("videoroom") != "attached" or not jsep:
            raise JanusError(f"join as subscriber: {data}")
        self.joined_s = self.clock() - (self.started_at or 0)
        self.participant_id = f"sub-{self._handle}"
        self._map_ssrcs(jsep["sdp"], data.get("streams", []))
        pc = self._pc = self._new_pc()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=jsep["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        count_at_socket(pc, self.streams, self.clock, pass_through=False, wrapped=self._wrapped)
        await self._session.message(
            self._handle, {"request": "start"}, {"type": "answer", "sdp": pc.localDescription.sdp}
        )
        for _ in range(1_000_000):
            if self.receiving() >= self.spec.expected_tracks:
                return
            await asyncio.sleep(0.02)

    def _map_ssrcs(self, sdp: str, streams: list[dict[str, Any]]) -> None:
        """SSRC -> track from Janus's offer (``a=ssrc`` lines, ``FID`` groups for RTX)."""
        feeds = {str(s.get("mid")): s.get("feed_id", self.feed) for s in streams}
        for media in SessionDescription.parse(sdp).media:
            if media.kind not in ("audio", "video") or media.direction == "inactive":
                continue
            mid = media.rtp.muxId
            feed = feeds.get(mid, self.feed)
            info = TrackInfo(f"{feed}-{media.kind}", str(feed), media.kind)
            rtx = {
                int(g.items[1])
                for g in media.ssrc_group
                if g.semantic == "FID" and len(g.items) > 1
            }
            for ssrc in media.ssrc:
                self.ssrc_tracks[ssrc.ssrc] = (info, ssrc.ssrc in rtx)

    def receiving(self) -> int:
        """Tracks of which at least one (non-retransmission) packet has arrived."""
        return len(
            {
                info.track_id
                for ssrc, (info, rtx) in self.ssrc_tracks.items()
                if not rtx and ssrc in self.streams
            }
        )

    def _new_pc(self) -> RTCPeerConnection:
        return RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
