"""The thin-link consultation: five cameras and a shared document, one clinic behind a thin line.

Five publishers: four cheap ones (Python clients looping a VP8 clip encoded once at
:data:`CLIP_BPS`, the rate of a good 640x360 camera, with no sound) and one Chromium tab on
loopback (fake camera with temporal layers, fake microphone, Opus with RED), which also receives
everything and shares a PDF the server renders as slides. The clinic is a Chromium tab behind a
veth pair whose rate and loss the caller sets (tests/e2e/lossy_room.py,
tests/support/impair.py). The Chromium tab is the only voice, so it is the active speaker.
Five Chromium encoders at that rate would need more CPU than a two-core test machine has
(measured: the browsers' own congestion control then held them at 0.3-1 Mbit/s each).

    async with thin_room(tmp_path) as room:
        await room.link.set_rate(2000)
        clinic, near = await measure([room.far, room.near[0]], seconds=12)

Used by tests/e2e/test_browser_thin_link.py and benchmarks/bench_thin.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from benchmarks.load.clip import ClipTrack, encode_clip
from tests.e2e.chromium import Page
from tests.e2e.lossy_room import LossyRoom, lossy_room
from tests.e2e.test_browser_content import pages_pdf, share_file
from tests.support.room_client import RoomClient

Stats = dict[str, Any]

CAMERAS = 5
"Publishers' cameras each receiving page gets (the other side's own camera included)."
CLIP_BPS = 1_200_000
RAMPED_BPS = 4_500_000
"""What the receiving tab must get of cameras before the line is touched: the clips and the
other Chromium camera together, more than twice a township clinic's 2 Mbit/s."""
JOIN_LIMIT_S = 45.0


@contextlib.asynccontextmanager
async def thin_room(
    work_dir: Path, link_index: int = 9, server_args: tuple[str, ...] = ()
) -> AsyncIterator[LossyRoom]:
    """The room joined, every camera and the slides decoded at both tabs, the link clean."""
    clip = await asyncio.get_running_loop().run_in_executor(
        None, encode_clip, "video/VP8", 640, 360, CLIP_BPS
    )
    async with contextlib.AsyncExitStack() as stack:
        room = await stack.enter_async_context(
            lossy_room(
                work_dir,
                near=1,
                link_index=link_index,
                server_args=server_args,
                # The speaker's camera at 30 frames per second, as a real one (Chromium's fake
                # one runs at 20 unless told).
                near_args=("--use-fake-device-for-media-stream=fps=30",),
            )
        )
        for index in range(CAMERAS - 1):
            client = RoomClient(room.server.ws_url, f"Camera {index + 1}")
            stack.push_async_callback(client.close)
            await client.connect()
            link = await room.server.invite("lossy-consult")
            invite = parse_qs(urlparse(link).query)["invite"][0]
            reply = await client.join("lossy-consult", invite=invite)
            assert reply["type"] == "joined", reply
            await client.send({"type": "subscription", "participants": []})
            reply = await client.publish({"camera": ClipTrack("video", clip.video)})
            assert reply["type"] == "publish_answer", reply
        await share_file(room.near[0], pages_pdf(2), "letter.pdf")
        for page in (room.far, room.near[0]):
            await page.wait_for(
                "(async () => { const s = await window.mcu.stats(); return s.inbound.filter("
                " i => i.kind === 'video' && i.source === 'camera' && i.framesDecoded > 0"
                f").length === {CAMERAS}; }})()",
                timeout=JOIN_LIMIT_S,
            )
        await room.far.wait_for("window.mcu.received.some(r => r.source === 'content')", timeout=30)
        yield room


async def latest_rung(page: Page, participant_id: str) -> str:
    """The rung the page was last told `participant_id`'s link is on ("full" before any)."""
    return str(
        await page.evaluate(
            "(() => { const links = window.mcu.messages.filter(m => m.type === 'link'"
            f" && m.participant_id === {json.dumps(participant_id)});"
            " return links.length ? links[links.length - 1].rung : 'full'; })()"
        )
    )


async def wait_for_rung(page: Page, participant_id: str, full: bool, limit: float) -> str:
    """Poll (at most `limit` s) until the rung is "full" (`full`) or anything else."""
    deadline = time.monotonic() + limit
    while True:
        rung = await latest_rung(page, participant_id)
        if (rung == "full") == full or time.monotonic() > deadline:
            return rung
        await asyncio.sleep(0.5)


async def wait_settled(page: Page, participant_id: str, quiet: float, limit: float) -> str:
    """Poll (at most `limit` s) until the rung has been told and not changed for `quiet` s."""
    deadline = time.monotonic() + limit
    rung, since = await latest_rung(page, participant_id), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = await latest_rung(page, participant_id)
        if now != rung:
            rung, since = now, time.monotonic()
        elif rung != "full" and time.monotonic() - since >= quiet:
            break
    return rung


def by_stream(stats: Stats, kind: str, source: str | None = None) -> dict[str, Stats]:
    """The page's inbound streams of `kind` (and `source`), by sender and track."""
    return {
        f"{s['participantId']}/{s['trackId']}": s
        for s in stats["inbound"]
        if s["kind"] == kind and s["trackId"] and (source is None or s["source"] == source)
    }


def rates(before: Stats, after: Stats, seconds: float, source: str) -> dict[str, float]:
    """Frames per second each video of `source` decoded between the two samples."""
    first = by_stream(before, "video", source)
    return {
        key: (s["framesDecoded"] - first.get(key, {}).get("framesDecoded", 0)) / seconds
        for key, s in by_stream(after, "video", source).items()
    }


def delta(before: Stats, after: Stats, kind: str, field: str) -> float:
    """How much `field` of every inbound stream of `kind` grew between the two samples."""
    first = by_stream(before, kind)
    return sum(
        s[field] - first.get(key, {}).get(field, 0) for key, s in by_stream(after, kind).items()
    )


def freezes_by_camera(before: Stats, after: Stats) -> dict[str, float]:
    """Chromium's freezeCount each camera added between the two samples."""
    first = by_stream(before, "video", "camera")
    return {
        key: s["freezeCount"] - first.get(key, {}).get("freezeCount", 0)
        for key, s in by_stream(after, "video", "camera").items()
    }


async def camera_rate(page: Page, seconds: float = 2.0) -> float:
    """Bits per second of camera video the page receives, over `seconds`."""
    before = by_stream(await page.evaluate("window.mcu.stats()"), "video", "camera")
    await asyncio.sleep(seconds)
    after = by_stream(await page.evaluate("window.mcu.stats()"), "video", "camera")
    received = sum(
        s["bytesReceived"] - before.get(key, {}).get("bytesReceived", 0) for key, s in after.items()
    )
    return received * 8 / seconds


async def ramped(page: Page, limit: float) -> float:
    """Wait (at most `limit` s) until `page` receives RAMPED_BPS of cameras (the Chromium
    camera's congestion control starts low); the rate then."""
    deadline = time.monotonic() + limit
    while (rate := await camera_rate(page)) < RAMPED_BPS and time.monotonic() < deadline:
        pass
    return rate


@dataclass
class Sample:
    """What one receiving page got over a window."""

    seconds: float
    camera_fps: dict[str, float]
    "Frames decoded per second, per camera."
    camera_freezes: dict[str, float]
    "Chromium's freezeCount per camera."
    concealed: float
    "Share of audio samples the decoder invented, over every audio stream."
    kbit_per_s: float
    "Everything received, RTP payloads."

    @property
    def best_fps(self) -> float:
        """The smoothest camera (the speaker's, when only the speaker is sent)."""
        return max(self.camera_fps.values(), default=0.0)

    @property
    def freezes(self) -> float:
        """Freezes of the smoothest camera (the others may have been paused meanwhile)."""
        if not self.camera_fps:
            return 0.0
        best = max(self.camera_fps, key=lambda key: self.camera_fps[key])
        return self.camera_freezes.get(best, 0.0)

    def describe(self) -> str:
        cameras = " ".join(f"{fps:4.1f}" for fps in sorted(self.camera_fps.values(), reverse=True))
        return (
            f"cameras fps [{cameras}]  freezes {self.freezes:3.0f}"
            f"  audio concealed {self.concealed:6.2%}  received {self.kbit_per_s:6.0f} kbit/s"
        )


async def measure(pages: list[Page], seconds: float) -> list[Sample]:
    """Each page's Sample over the next `seconds`."""
    before = [await page.evaluate("window.mcu.stats()") for page in pages]
    start = time.monotonic()
    await asyncio.sleep(seconds)
    after = [await page.evaluate("window.mcu.stats()") for page in pages]
    elapsed = time.monotonic() - start
    samples = []
    for first, last in zip(before, after, strict=True):
        total = delta(first, last, "audio", "totalSamplesReceived")
        received = delta(first, last, "video", "bytesReceived")
        received += delta(first, last, "audio", "bytesReceived")
        samples.append(
            Sample(
                seconds=elapsed,
                camera_fps=rates(first, last, elapsed, "camera"),
                camera_freezes=freezes_by_camera(first, last),
                concealed=delta(first, last, "audio", "concealedSamples") / max(1.0, total),
                kbit_per_s=received * 8 / elapsed / 1000,
            )
        )
    return samples
