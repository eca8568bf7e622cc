"""A thin link's last rungs over real peers: the server switches a losing subscriber to the mix,
then to audio alone, and back to forwarded cameras when the loss stops (docs/thin-links.md).

The subscriber is a real aiortc client on loopback; its link is made to look thin as a lossy
line would show it to the server: receiver reports saying what fraction of each stream was lost
(and a REMB, as Chromium sends), literal RTCP packets sent on its subscribe connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import re
import time
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    pack_remb_fci,
)

from tests.support.room_client import VIDEO_CLOCK, RoomClient, ToneTrack, joined_client
from tests.support.server import ServerProcess

LOSS_20_PERCENT = 51
"A receiver report's fraction lost, in 1/256."
REPORTS_PER_SECOND = 10
"""Many more than the client's own reports (about one per stream per second, losing nothing
on loopback), so the server's smoothed loss stays near what these say."""


class NoiseTrack(MediaStreamTrack):
    """Video the encoder cannot compress: it runs at its target rate, as a busy camera does.
    Small, so that encoding and decoding it leave the test's clients time to read their sockets
    (a client that falls behind loses packets for real, and the ladder rightly follows)."""

    kind = "video"

    def __init__(self, fps: int = 15) -> None:
        super().__init__()
        self.fps = fps
        self._count = 0
        self._start: float | None = None
        self._random = np.random.default_rng(7)

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._count / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        image = self._random.integers(0, 256, (120, 160, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self._count * VIDEO_CLOCK // self.fps
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._count += 1
        return frame


def _server_ssrcs(pc: RTCPeerConnection) -> list[int]:
    """The SSRCs the server sends on ``pc``: every section of its offer still in use."""
    ssrcs: list[int] = []
    for section in pc.remoteDescription.sdp.split("\r\nm=")[1:]:
        if "a=inactive" not in section:
            ssrcs += sorted({int(s) for s in re.findall(r"^a=ssrc:(\d+) ", section, re.M)})
    return ssrcs


async def _report(client: RoomClient, fraction_lost: int, count: int = 1) -> None:
    """Send ``count`` receiver reports (and a REMB) covering every stream the server sends."""
    pc = client.subscribe_pc
    if pc is None or pc.remoteDescription is None:
        return
    ssrcs = _server_ssrcs(pc)[:31]  # a report holds at most 31 blocks
    transport = pc.getTransceivers()[0].receiver.transport
    blocks = [RtcpReceiverInfo(ssrc, fraction_lost, 0, 0, 0, 0, 0) for ssrc in ssrcs]
    remb = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=pack_remb_fci(300_000, ssrcs)
    )
    with contextlib.suppress(ConnectionError):  # renegotiating: the next round sends
        for _ in range(count):
            await transport._send_rtp(bytes(RtcpRrPacket(ssrc=1, reports=blocks)))
        await transport._send_rtp(bytes(remb))


def _links(client: RoomClient) -> list[dict[str, Any]]:
    """The ``link`` messages about the client's own link, in order."""
    return [
        m
        for m in client.messages
        if m["type"] == "link" and m["participant_id"] == client.participant_id
    ]


def _rungs(client: RoomClient) -> list[str]:
    """The rungs the server told the client its own link moved to, in order (a ``link`` also
    comes when only the figure moved: those are left out)."""
    told = [m["rung"] for m in _links(client)]
    return [rung for i, rung in enumerate(told) if i == 0 or told[i - 1] != rung]


def _frames(client: RoomClient, kind: str, *, mix: bool) -> int:
    return sum(
        t.frames
        for t in client.received.values()
        if t.kind == kind and (t.participant_id == "mix") == mix
    )


async def test_a_losing_subscriber_gets_the_mix_then_audio_then_cameras_again(
    server: ServerProcess,
) -> None:
    await server.create_room("cardio-1", "correct horse")
    publishers = [await joined_client(server, name, password="correct horse") for name in "AB"]
    thin = await joined_client(server, "Township", password="correct horse")
    loss: dict[str, Any] = {"fraction": 0}

    async def lossy_line() -> None:
        while True:
            if loss["fraction"]:
                await _report(thin, loss["fraction"])
            await asyncio.sleep(1 / REPORTS_PER_SECOND)

    line = asyncio.create_task(lossy_line())
    try:
        for publisher, tone in zip(publishers, (440.0, 1000.0), strict=True):
            await publisher.publish({"microphone": ToneTrack(tone), "camera": NoiseTrack()})
        await thin.wait_until(lambda: _frames(thin, "video", mix=False) > 20, timeout=30)
        assert _rungs(thin) == []  # a clean link gets everything, and is told nothing

        # A fifth of everything is lost, whatever is sent: the ladder goes down at once to what
        # fits, past the speaker's camera, to the mix; its picture arrives.
        await _report(thin, LOSS_20_PERCENT, count=10)
        loss["fraction"] = LOSS_20_PERCENT
        await thin.wait_for(lambda m: m["type"] == "link" and m["rung"] == "mixed", timeout=30)
        await thin.wait_until(lambda: _frames(thin, "video", mix=True) > 5, timeout=30)
        offer = next(
            m
            for m in reversed(thin.messages)
            if m["type"] == "subscribe_offer" and m["tracks"][0]["participant_id"] == "mix"
        )
        assert sorted(t["kind"] for t in offer["tracks"]) == ["audio", "video"]

        # The loss goes on with the mix too: audio only (no content is shared), voices forwarded.
        await thin.wait_for(
            lambda m: m["type"] == "link" and m["rung"] == "audio_content", timeout=30
        )
        await thin.wait_for(
            lambda m: (
                m["type"] == "subscribe_offer"
                and m["tracks"]
                and all(t["participant_id"] != "mix" for t in m["tracks"])
            )
        )
        audio = _frames(thin, "audio", mix=False)
        await thin.wait_until(lambda: _frames(thin, "audio", mix=False) > audio + 100)
        cameras = _frames(thin, "video", mix=False)  # after the first tick paused them
        audio = _frames(thin, "audio", mix=False)
        await thin.wait_until(lambda: _frames(thin, "audio", mix=False) > audio + 100)
        assert _frames(thin, "video", mix=False) == cameras  # voices flow, no camera does
        assert _rungs(thin)[-1] == "audio_content"

        # The loss stops: back up one rung per hold, through the mix to the speaker's camera.
        loss["fraction"] = 0
        await _report(thin, 0, count=10)
        await thin.wait_for(lambda m: m["type"] == "link" and m["rung"] == "speaker_only", 40)
        cameras = _frames(thin, "video", mix=False)
        await thin.wait_until(lambda: _frames(thin, "video", mix=False) > cameras + 10, 20)
        told = _rungs(thin)
        after = told[told.index("audio_content") :]
        assert after[:3] == ["audio_content", "mixed", "speaker_only"]  # one rung at a time
        assert "mixed" in told[: told.index("audio_content")]
    finally:
        print("link messages:", [(m["rung"], m["estimate_bps"]) for m in _links(thin)])
        line.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await line
        for client in (*publishers, thin):
            await client.close()
