"""A WHEP viewer's sections follow the stage between real publishers, without renegotiation."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy

from mcu.media import CodecInfo, TrackSource
from mcu.sfu import aiortc_reports
from mcu.sfu.peer import NegotiationError, PublisherConnection
from mcu.sfu.producer import Producer
from mcu.sfu.stage import Stage
from mcu.sfu.viewer import CODEC_MISMATCHES, ViewerConnection, codec_compatible
from tests.support.room_client import ColourTrack, ToneTrack

RED = (200, 30, 30)
LONG_MID = "m" * 17
BLUE = (30, 30, 200)


def _new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


@dataclass
class Publisher:
    """A real aiortc publisher, answered by the server's PublisherConnection."""

    client: RTCPeerConnection
    server: PublisherConnection
    producers: dict[TrackSource, Producer]

    async def close(self) -> None:
        for producer in self.producers.values():
            producer.close()
        await self.server.close()
        await self.client.close()


def _only(mime_type: str) -> list[Any]:
    """One video codec and RTX, as a publisher or player that has only that codec offers."""
    caps = RTCRtpSender.getCapabilities("video").codecs
    return [c for c in caps if c.mimeType in (mime_type, "video/rtx")]


async def _publish(
    name: str, tracks: dict[TrackSource, MediaStreamTrack], video: str = "video/H264"
) -> Publisher:
    client = _new_pc()
    transceivers = []
    for source, track in tracks.items():
        transceiver = client.addTransceiver(track, direction="sendonly")
        if track.kind == "video":
            transceiver.setCodecPreferences(_only(video))
        transceivers.append((transceiver, source))
    await client.setLocalDescription(await client.createOffer())
    sources = {t.mid or "": source for t, source in transceivers}
    server = PublisherConnection([])
    answer, offered = await server.negotiate(client.localDescription.sdp, sources)
    producers = {}
    for section in offered:
        producer = Producer(
            f"{name}-{section.source}", name, section.source, section.codec, _nothing
        )
        server.bind(section, producer)
        producers[section.source] = producer
    await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return Publisher(client, server, producers)


def _nothing() -> None:
    pass


@dataclass
class Viewer:
    """A WHEP player: offers receive-only sections, decodes what arrives, per section."""

    pc: RTCPeerConnection = field(default_factory=_new_pc)
    frames: dict[str, int] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pc.on("track", self._on_track)

    async def offer(self, *kinds: str, video: str | None = None) -> str:
        """Receive-only sections of ``kinds``; ``video``: offer only this video codec."""
        for kind in kinds:
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            if kind == "video" and video is not None:
                transceiver.setCodecPreferences(_only(video))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    def _on_track(self, track: MediaStreamTrack) -> None:
        mid = next(t.mid for t in self.pc.getTransceivers() if t.receiver.track is track)
        self.frames[mid or ""] = 0
        self.tasks.append(asyncio.create_task(self._consume(mid or "", track)))

    async def _consume(self, mid: str, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.frames[mid] += 1
                self.last[mid] = frame

    def colour(self, mid: str) -> str | None:
        """``red`` or ``blue`` for the last picture decoded on ``mid``, else None."""
        frame = self.last.get(mid)
        if frame is None:
            return None
        r, _, b = frame.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
        return "red" if r > b + 80 else "blue" if b > r + 80 else None

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.pc.close()


async def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def publishers() -> AsyncIterator[tuple[Publisher, Publisher]]:
    red = await _publish(
        "red", {TrackSource.MICROPHONE: ToneTrack(), TrackSource.CAMERA: ColourTrack(RED)}
    )
    blue = await _publish("blue", {TrackSource.CAMERA: ColourTrack(BLUE)})
    try:
        yield red, blue
    finally:
        await red.close()
        await blue.close()


async def test_sections_follow_the_stage_without_renegotiation(
    publishers: tuple[Publisher, Publisher],
) -> None:
    red, blue = publishers
    red_camera = red.producers[TrackSource.CAMERA]
    blue_camera = blue.producers[TrackSource.CAMERA]
    assert red_camera.codec.mime_type == blue_camera.codec.mime_type == "video/H264"
    stage = Stage("lecture-1")
    stage.set([red_camera], [red.producers[TrackSource.MICROPHONE]])
    count = [0]
    closed: list[bool] = []

    def on_consumer(delta: int) -> None:
        count[0] += delta

    viewer, other = Viewer(), Viewer()
    connection = ViewerConnection([], stage, on_consumer)
    connection.on_closed = lambda: closed.append(True)
    # A player that offers only VP8 gets a VP8 section, which cannot carry the H.264 cameras.
    vp8_connection = ViewerConnection([], stage, on_consumer)
    try:
        answer = await connection.answer(await viewer.offer("audio", "video", "video"))
        await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        assert count[0] == 3 and "H264" in answer and "VP8" in answer
        consumers = connection.consumers()

        # Audio and the first video section carry the stage; the second video section is silent.
        await _until(lambda: viewer.colour("1") == "red" and viewer.frames.get("0", 0) > 10)
        assert viewer.frames.get("2", 0) == 0

        answer = await vp8_connection.answer(await other.offer("audio", "video", video="video/VP8"))
        await other.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        audio, video = vp8_connection.consumers()
        await _until(lambda: audio.packets_sent > 0)
        assert video.packets_sent == 0 and len(red_camera.sinks) == 1  # only the H.264 viewer

        # The stage changes: a new speaker's camera takes slot 0, the old one moves to slot 1.
        stage.set([blue_camera, red_camera], [red.producers[TrackSource.MICROPHONE]])
        await _until(lambda: viewer.colour("1") == "blue" and viewer.colour("2") == "red")
        assert connection.consumers() == consumers  # same sections, same SSRCs: no new offer
        assert viewer.pc.signalingState == "stable"

        # A player that goes away (DTLS close_notify) ends its session without a DELETE.
        left: list[bool] = []
        vp8_connection.on_closed = functools.partial(left.append, True)
        await other.close()
        await _until(lambda: left == [True])
        assert count[0] == 3 and stage.listeners == 1

        await connection.close()
        assert closed == [True] and stage.listeners == 0
        assert count[0] == 0 and red_camera.sinks == [] and blue_camera.sinks == []
    finally:
        await connection.close()
        await vp8_connection.close()
        await viewer.close()
        await other.close()
    assert count[0] == 0 and closed == [True] and stage.listeners == 0


async def test_a_section_carries_vp8_then_h264_as_the_stage_changes() -> None:
    # A meeting answers each publisher with its own first codec: one VP8, one H.264. A player
    # offering both decodes whichever holds its slot, in the same section, without renegotiation.
    vp8 = await _publish("vp8", {TrackSource.CAMERA: ColourTrack(RED)}, video="video/VP8")
    h264 = await _publish("h264", {TrackSource.CAMERA: ColourTrack(BLUE)}, video="video/H264")
    vp8_camera, h264_camera = vp8.producers[TrackSource.CAMERA], h264.producers[TrackSource.CAMERA]
    assert (vp8_camera.codec.mime_type, h264_camera.codec.mime_type) == ("video/VP8", "video/H264")
    stage = Stage("meeting-1")
    stage.set([vp8_camera], [])
    both, h264_only = Viewer(), Viewer()
    connection = ViewerConnection([], stage, lambda delta: None)
    narrow = ViewerConnection([], stage, lambda delta: None)
    mismatches = CODEC_MISMATCHES._value.get()
    try:
        answer = await connection.answer(await both.offer("video"))
        await both.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await _until(lambda: both.colour("0") == "red" and both.frames["0"] > 5)
        stage.set([h264_camera], [])
        await _until(lambda: both.colour("0") == "blue")
        before = both.frames["0"]
        await _until(lambda: both.frames["0"] > before + 5)
        stage.set([vp8_camera], [])
        await _until(lambda: both.colour("0") == "red")
        assert both.pc.signalingState == "stable"

        # A player that offered only H.264 cannot take the VP8 slot: silent, logged and
        # counted, until an H.264 publisher holds it.
        answer = await narrow.answer(await h264_only.offer("video", video="video/H264"))
        await h264_only.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        assert "VP8" not in answer
        await _until(lambda: CODEC_MISMATCHES._value.get() > mismatches)
        assert narrow.consumers()[0].packets_sent == 0
        stage.set([h264_camera], [])
        await _until(lambda: h264_only.colour("0") == "blue")
    finally:
        await connection.close()
        await narrow.close()
        await both.close()
        await h264_only.close()
        await vp8.close()
        await h264.close()


async def test_unusable_offers_are_refused_with_a_reason() -> None:
    stage = Stage("lecture-1")
    player = Viewer()
    try:
        offer = await player.offer("audio", "video")
        cases = {
            "garbage\r\n": "no audio or video section",
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\na=setup:bogus\r\n": (
                "malformed SDP"
            ),
            offer.replace("a=setup:actpass", "a=setup:active"): "an answer, not an offer",
            offer.replace("a=ice-ufrag:", "a=x-ufrag:"): "no ICE credentials",
            offer.replace("a=recvonly", "a=sendonly"): "no audio or video section the viewer",
            # Found by the whep_answer fuzz target: a mid RTP's one-byte header extension cannot
            # carry made the section's consumer raise ValueError, which WHEP answered with a 500.
            offer.replace("a=mid:1", f"a=mid:{LONG_MID}").replace(
                "BUNDLE 0 1", f"BUNDLE 0 {LONG_MID}"
            ): "mid",
        }
        for sdp, reason in cases.items():
            closed: list[bool] = []
            connection = ViewerConnection([], stage, lambda delta: None)
            connection.on_closed = functools.partial(closed.append, True)
            with pytest.raises(NegotiationError, match=reason):
                await connection.answer(sdp)
            assert closed == [True] and stage.listeners == 0
    finally:
        await player.close()


def test_codec_compatibility_includes_h264_packetization_mode() -> None:
    mode1 = CodecInfo("video/H264", 90000, None, (("packetization-mode", "1"),))
    mode0 = CodecInfo("video/H264", 90000, None, (("packetization-mode", "0"),))
    assert codec_compatible(mode1, mode1) and codec_compatible(
        mode0, CodecInfo("video/h264", 90000)
    )
    assert not codec_compatible(mode1, mode0)
    assert not codec_compatible(CodecInfo("video/VP8", 90000), mode1)
    assert codec_compatible(CodecInfo("audio/opus", 48000, 2), CodecInfo("audio/OPUS", 48000, 2))


async def test_h264_section_prefers_packetization_mode_1() -> None:
    # A player listing a mode-0 H.264 variant first must still get mode 1, which every
    # publisher sends; mode 0 would leave the section silent. (aiortc's codec matching drops
    # mode-0 variants; this guards that an upgrade keeps it so.)
    stage = Stage("lecture-1")
    player = Viewer()
    connection = ViewerConnection([], stage, lambda delta: None)
    try:
        offer = await player.offer("video")
        first_h264 = next(
            line.split()[0].split(":")[1]
            for line in offer.splitlines()
            if line.startswith("a=rtpmap:") and "H264/90000" in line
        )
        marker = f"a=fmtp:{first_h264} "
        lines = [
            line.replace("packetization-mode=1", "packetization-mode=0")
            if line.startswith(marker)
            else line
            for line in offer.split("\r\n")
        ]
        answer = await connection.answer("\r\n".join(lines))
        video = answer.split("m=video", 1)[1]
        chosen = video.split("\r\n", 1)[0].split()[2]
        assert chosen != first_h264
        assert f"a=fmtp:{chosen} " in video
        fmtp = next(line for line in video.split("\r\n") if line.startswith(f"a=fmtp:{chosen} "))
        assert "packetization-mode=1" in fmtp
    finally:
        await connection.close()
        await player.close()


async def test_a_viewers_streams_get_sender_reports_together_on_the_shared_timer(
    publishers: tuple[Publisher, Publisher],
) -> None:
    # The publisher's aiortc sends its own sender reports; the server translates each into the
    # viewer's timestamps and sends the viewer's audio and video reports as one compound packet
    # per connection from one timer for all connections (no RTCP task per sender).
    red, _ = publishers
    stage = Stage("lecture-sr")
    stage.set([red.producers[TrackSource.CAMERA]], [red.producers[TrackSource.MICROPHONE]])
    viewer = Viewer()
    connection = ViewerConnection([], stage, lambda delta: None)
    try:
        answer = await connection.answer(await viewer.offer("audio", "video"))
        await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        shared = aiortc_reports.reports()
        await _until(lambda: len(shared) == 1)  # both legs, one connection

        async def reported() -> dict[str, int]:
            sent = {}
            for transceiver in viewer.pc.getTransceivers():
                for stats in (await transceiver.receiver.getStats()).values():
                    if stats.type == "remote-outbound-rtp":
                        sent[transceiver.kind] = stats.packetsSent
            return sent

        deadline = time.monotonic() + 15
        while set(sent := await reported()) != {"audio", "video"} or min(sent.values()) == 0:
            assert time.monotonic() < deadline, f"sender reports seen: {sent}"
            await asyncio.sleep(0.2)
        audio, video = connection.consumers()
        assert sent["audio"] <= audio.packets_sent and sent["video"] <= video.packets_sent
    finally:
        await connection.close()
        await viewer.close()
    assert len(aiortc_reports.reports()) == 0  # the connection's legs left with it
