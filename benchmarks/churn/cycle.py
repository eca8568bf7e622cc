"""One cycle of a soak: everything a day of consultations and lessons does, then everyone leaves.

A cycle, over the real protocols against the real server:

1. a meeting fills: two publishers (audio + video from the clips of ``load/clip.py``, one VP8
   and one H.264, encoded once and replayed) and a subscriber that counts packets at its socket;
   a WHIP lecturer starts a lesson;
2. the meeting is recorded (admin API), the first publisher uploads a document (a three-page
   PDF, or a PNG every other cycle) and pages through it as slides while the subscriber receives
   the content track, WHEP viewers watch the lesson until audio and video reach them, and a PDF
   is uploaded to the courseware library and deleted again;
3. the recording stops, everyone leaves (the subscriber drops its socket without a ``leave``
   every other cycle, as a crashed browser does), the lecturer ends the lesson;
4. once the recording's library item is complete (tracks and composite) it is deleted, and the
   cycle waits until the server reports nobody connected.

Steps can be left out (``without``: ``recording``, ``slides``, ``whep``, ``library``) to find
which one a growth comes with. Deleting what a cycle created keeps disk and catalogue at the
same size by design, so whatever still grows is the server's. Every failure is kept as an error
of the cycle, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
from broadcast.clients import WhepViewer, WhipPublisher
from load.client import PUBLISHER, SUBSCRIBER, ClientSpec, LoadClient
from load.clip import Clip
from PIL import Image, ImageDraw

READY_TIMEOUT = 30.0
"Seconds a participant, the lecturer or a viewer has to get media flowing."
ITEM_TIMEOUT = 90.0
"Seconds a stopped recording has to become a complete library item (composite rendered)."
IDLE_TIMEOUT = 30.0
"Seconds the server has to report nobody connected after everyone left."
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30)
PAGE_PAUSE = 1.0
"Seconds between page turns."


def document_pdf(pages: int = 3, size: tuple[int, int] = (1280, 720)) -> bytes:
    """A PDF of ``pages`` slides (text-like bars on a light page, a different layout each)."""
    images = []
    for page in range(pages):
        image = Image.new("RGB", size, (245, 245, 240))
        draw = ImageDraw.Draw(image)
        draw.rectangle((60, 50, size[0] - 60, 130), fill=(30, 60, 120))
        for line in range(8):
            y = 180 + line * 60
            draw.rectangle((80, y, 80 + (page * 97 + line * 131) % 900 + 200, y + 24), fill=0)
        images.append(image)
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:])
    return out.getvalue()


def document_png(size: tuple[int, int] = (800, 600)) -> bytes:
    """A PNG scan-like picture (a gradient with noise, so it compresses like a photo)."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(0, 255, size[0], dtype=np.float32)[None, :, None]
    noise = rng.normal(0, 12, (size[1], size[0], 3)).astype(np.float32)
    pixels = np.clip(ramp + noise, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True)
class Rooms:
    """The two rooms every cycle uses (created once, before the first cycle)."""

    meeting: str
    meeting_password: str
    lecture: str
    lecture_password: str
    "The lecturers' (WHIP) password."
    viewer_password: str
    "The audience's (WHEP) password."


@dataclass
class CycleResult:
    """What one cycle did, and what went wrong."""

    index: int
    started: float
    "Seconds since the run started."
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    "Things done: joins, pages shown, viewers served, uploads, recordings."

    def count(self, what: str, n: int = 1) -> None:
        """Add ``n`` to ``counts[what]``."""
        self.counts[what] = self.counts.get(what, 0) + n


class _Events:
    """Room events one participant received, waited on with a bound."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def add(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(predicate(m) for m in self.messages):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("event not seen in time")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)


async def _bounded_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


class Cycle:
    """Runs cycles against one server (``base_url``) with the admin token."""

    def __init__(
        self,
        base_url: str,
        admin_token: str,
        rooms: Rooms,
        clips: tuple[Clip, Clip],
        *,
        hold: float,
        viewers: int,
        clock: Callable[[], float],
        without: frozenset[str] = frozenset(),
    ) -> None:
        self.base_url = base_url
        self.ws_url = base_url.replace("http", "ws", 1) + "/ws"
        self.rooms = rooms
        self.vp8_clip, self.h264_clip = clips
        self.hold = hold
        self.viewers = viewers
        self.clock = clock
        self.without = without
        self.pdf = document_pdf()
        self.png = document_png()
        self._admin_headers = {"Authorization": f"Bearer {admin_token}"}

    async def create_rooms(self, http: aiohttp.ClientSession) -> None:
        """The meeting and the lecture room (raises when the server refuses them)."""
        bodies = [
            {
                "id": self.rooms.meeting,
                "title": "Soak consultation",
                "password": self.rooms.meeting_password,
            },
            {
                "id": self.rooms.lecture,
                "title": "Soak lesson",
                "password": self.rooms.lecture_password,
                "kind": "lecture",
                "viewer_password": self.rooms.viewer_password,
            },
        ]
        for body in bodies:
            async with http.post(
                f"{self.base_url}/api/rooms", json=body, headers=self._admin_headers
            ) as response:
                if response.status != 201:
                    raise RuntimeError(f"creating room {body['id']}: {await response.text()}")

    async def run(self, index: int, http: aiohttp.ClientSession) -> CycleResult:
        """One cycle; ``http`` is a session that keeps no connection alive between requests."""
        result = CycleResult(index, self.clock())
        presenter_events = _Events()
        publishers = [
            LoadClient(
                ClientSpec(
                    f"c{index}-pub{i}", PUBLISHER, self.rooms.meeting, self.rooms.meeting_password
                ),
                self.ws_url,
                clip,
                on_event=presenter_events.add if i == 0 else None,
            )
            for i, clip in enumerate((self.vp8_clip, self.h264_clip))
        ]
        subscriber = LoadClient(
            ClientSpec(
                f"c{index}-sub",
                SUBSCRIBER,
                self.rooms.meeting,
                self.rooms.meeting_password,
                expected_tracks=4,
            ),
            self.ws_url,
            self.vp8_clip,
        )
        lecturer = WhipPublisher(
            http,
            f"{self.base_url}/whip/{self.rooms.lecture}",
            self.rooms.lecture_password,
            self.h264_clip,
        )
        viewers = [
            WhepViewer(
                f"c{index}-viewer{i}",
                http,
                f"{self.base_url}/whep/{self.rooms.lecture}",
                self.rooms.viewer_password,
                self.h264_clip.video_codec,
            )
            for i in range(self.viewers)
        ]
        recording_id: str | None = None
        lesson = "whep" not in self.without
        try:
            await asyncio.gather(
                *(p.run(READY_TIMEOUT) for p in publishers),
                subscriber.run(READY_TIMEOUT),
                *(
                    [self._step(result, "lecturer", lecturer.publish(READY_TIMEOUT))]
                    if lesson
                    else []
                ),
            )
            result.count("joins", len(publishers) + 1)
            if "recording" not in self.without:
                recording_id = await self._step(result, "recording start", self._record(http, True))
            steps = {
                "slides": lambda: self._slides(
                    index, http, publishers[0], presenter_events, subscriber, result
                ),
                "whep": lambda: self._watch(viewers, result),
                "library": lambda: self._library(index, http, result),
            }
            await asyncio.gather(
                *(
                    self._step(result, name, start())
                    for name, start in steps.items()
                    if name not in self.without
                ),
                asyncio.sleep(self.hold),
            )
            if recording_id:
                await self._step(result, "recording stop", self._record(http, False))
        finally:
            await asyncio.gather(
                *(v.close() for v in viewers if lesson),
                *(p.close() for p in publishers),
                subscriber.close(leave=index % 2 == 0),
                *([lecturer.close()] if lesson else []),
                return_exceptions=True,
            )
        for client in (*publishers, subscriber):
            result.errors.extend(f"{client.spec.name}: {e}" for e in client.errors)
        if recording_id:
            await self._step(
                result, "recording item", self._discard_recording(http, recording_id, result)
            )
        await self._step(result, "idle", self._until_idle(http))
        result.seconds = self.clock() - result.started
        return result

    async def _step(self, result: CycleResult, name: str, work: Awaitable[Any]) -> Any:
        """Run one step; a failure becomes an error of the cycle."""
        try:
            return await work
        except Exception as exc:
            result.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            return None

    async def _record(self, http: aiohttp.ClientSession, active: bool) -> str | None:
        async with http.post(
            f"{self.base_url}/api/rooms/{self.rooms.meeting}/recording",
            json={"active": active},
            headers=self._admin_headers,
            timeout=HTTP_TIMEOUT,
        ) as response:
            body = await response.json(content_type=None)
            if response.status != 200:
                raise RuntimeError(f"{response.status} {body}")
            recording_id: str | None = body.get("recording_id")
            return recording_id

    async def _slides(
        self,
        index: int,
        http: aiohttp.ClientSession,
        presenter: LoadClient,
        events: _Events,
        subscriber: LoadClient,
        result: CycleResult,
    ) -> None:
        document = self.png if index % 2 else self.pdf
        async with http.post(
            f"{self.base_url}/rooms/{self.rooms.meeting}/documents",
            data=document,
            headers={"Authorization": f"Bearer {presenter.session_token}"},
            timeout=HTTP_TIMEOUT,
        ) as response:
            body = await response.json(content_type=None)
            if response.status != 201:
                raise RuntimeError(f"upload {response.status} {body}")
        result.count("documents")
        document_id, pages = body["document_id"], int(body["pages"])
        await presenter.send(
            {"type": "slides", "action": "show", "document_id": document_id, "page": 1}
        )
        await events.wait_for(
            lambda m: m.get("type") == "slides" and m.get("document_id") == document_id,
            READY_TIMEOUT,
        )
        # The content track is a fifth track at the subscriber: wait for its packets.
        await _bounded_until(lambda: subscriber.receiving() >= 5, READY_TIMEOUT)
        result.count("pages")
        for page in range(2, pages + 1):
            await asyncio.sleep(PAGE_PAUSE)
            await presenter.send({"type": "slides", "action": "page", "page": page})
            await events.wait_for(
                lambda m, page=page: m.get("type") == "slides" and m.get("page") == page,
                READY_TIMEOUT,
            )
            result.count("pages")
        await asyncio.sleep(PAGE_PAUSE)
        await presenter.send({"type": "slides", "action": "stop"})
        await events.wait_for(
            lambda m: m.get("type") == "slides" and m.get("presenter") is None, READY_TIMEOUT
        )

    async def _watch(self, viewers: list[WhepViewer], result: CycleResult) -> None:
        await asyncio.gather(*(v.watch(READY_TIMEOUT) for v in viewers))
        failed = [f"{v.name}: {v.error}" for v in viewers if v.error is not None]
        result.count("viewers", len(viewers) - len(failed))
        if failed:
            raise RuntimeError("; ".join(failed))

    async def _library(self, index: int, http: aiohttp.ClientSession, result: CycleResult) -> None:
        async with http.post(
            f"{self.base_url}/api/library",
            params={"title": f"Soak courseware {index}", "department": "Soak"},
            data=self.pdf,
            headers=self._admin_headers,
            timeout=HTTP_TIMEOUT,
        ) as response:
            body = await response.json(content_type=None)
            if response.status != 201:
                raise RuntimeError(f"upload {response.status} {body}")
        await self._delete_item(http, body["id"])
        result.count("library uploads")

    async def _delete_item(self, http: aiohttp.ClientSession, item_id: str) -> None:
        async with http.delete(
            f"{self.base_url}/api/library/{item_id}",
            headers=self._admin_headers,
            timeout=HTTP_TIMEOUT,
        ) as response:
            if response.status != 204:
                raise RuntimeError(f"delete {item_id}: {response.status} {await response.text()}")

    async def _discard_recording(
        self, http: aiohttp.ClientSession, recording_id: str, result: CycleResult
    ) -> None:
        """Wait until the recording is complete with its composite, then delete it."""
        deadline = time.monotonic() + ITEM_TIMEOUT
        item: Any = None
        while time.monotonic() < deadline:
            async with http.get(
                f"{self.base_url}/api/library/{recording_id}",
                headers=self._admin_headers,
                timeout=HTTP_TIMEOUT,
            ) as response:
                item = await response.json(content_type=None)
                if response.status != 200:
                    raise RuntimeError(f"recording {recording_id}: {response.status} {item}")
            roles = {f.get("role") for f in item.get("files", [])}
            if item.get("status") == "complete" and "composite" in roles:
                result.count("recordings")
                await self._delete_item(http, recording_id)
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"recording {recording_id} not complete: {item}")

    async def _until_idle(self, http: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + IDLE_TIMEOUT
        health: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                async with http.get(f"{self.base_url}/healthz", timeout=HTTP_TIMEOUT) as response:
                    health = await response.json()
                if health.get("participants") == 0 and health.get("viewers") == 0:
                    return
            await asyncio.sleep(0.25)
        raise TimeoutError(f"the server still reports people after everyone left: {health}")
