"""A consultation whose participants are Chromium tabs, one of them behind an impaired link.

The server listens on every address of the test's namespace; `near` participants are tabs of
one browser on loopback, the `far` participant a browser in a namespace of its own, reaching
the server over a veth pair whose loss and outages the test sets (tests/support/impair.py):

    async with lossy_room(tmp_path, near=2) as room:
        await room.link.set_loss(5)
        stats = await room.far.evaluate("window.mcu.stats()")
        video = inbound_video(stats, room.near_ids[0])

Used by tests/e2e/test_browser_loss.py and benchmarks/bench_loss.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.chromium import CHROMIUM_PATH, Chromium, ChromiumError, Page, chromium_available
from tests.e2e.room_page import JOIN_TIMEOUT, describe, wait_for_media, with_name
from tests.support.impair import ImpairedLink, impair_available
from tests.support.server import ServerProcess

Stats = dict[str, Any]

NEEDS_BROWSER_AND_LINKS = [
    pytest.mark.skipif(
        not chromium_available(),
        reason=f"no Chromium at {CHROMIUM_PATH} (Debian package `chromium`; CI installs it)",
    ),
    pytest.mark.skipif(
        impair_available() is not None, reason=f"no impaired links here: {impair_available()}"
    ),
]
"The marks of every test module that puts a browser behind an impaired link."

SERVER_COUNTERS = (
    "mcu_nacks_received_total",
    "mcu_retransmissions_total",
    "mcu_rtx_packets_received_total",
    "mcu_keyframe_requests_received_total",
    "mcu_keyframe_requests_sent_total",
)
"The server's repair counters (docs/operations.md): NACKs in and packets resent to subscribers,"
" retransmissions from publishers, keyframe requests from subscribers and to publishers."


@dataclass
class LossyRoom:
    """A joined room: every participant receives the others' media."""

    server: ServerProcess
    link: ImpairedLink
    far: Page
    "The participant behind `link`."
    near: list[Page]
    "Participants on loopback, unaffected by `link`."
    far_id: str = ""
    near_ids: list[str] = field(default_factory=list)

    @property
    def pages(self) -> list[Page]:
        """Every participant's page, far first."""
        return [self.far, *self.near]

    async def describe(self) -> str:
        """Everything the pages can tell, for a failure message."""
        return await describe(self.pages)

    async def server_counters(self) -> dict[str, float]:
        """The server's repair counters now (`SERVER_COUNTERS`)."""
        async with self.server.http.get(self.server.base_url + "/metrics") as response:
            text = await response.text()
        counters = {}
        for name in SERVER_COUNTERS:
            match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
            counters[name] = float(match.group(1)) if match else 0.0
        return counters


def inbound_video(stats: Stats, participant_id: str) -> Stats:
    """The page's inbound video stream that `participant_id` sends (zeros when none yet)."""
    for entry in stats.get("inbound") or []:
        if entry["kind"] == "video" and entry["participantId"] == participant_id:
            found: Stats = entry
            return found
    return {"framesDecoded": 0, "packetsReceived": 0}


def inbound_audio(stats: Stats, participant_id: str) -> Stats:
    """The page's inbound audio stream that `participant_id` sends (zeros when none yet)."""
    for entry in stats.get("inbound") or []:
        if entry["kind"] == "audio" and entry["participantId"] == participant_id:
            found: Stats = entry
            return found
    return {"packetsReceived": 0, "totalSamplesReceived": 0, "concealedSamples": 0}


async def joined_or_reloaded(page: Page, url: str) -> None:
    """Wait for the page to join; once, if it has not within JOIN_TIMEOUT, load it again.

    Rarely, on a loaded CI machine, one page of these rooms never got past joining (its state
    was lost with the cut log). The join is not what these tests are about: say what the page
    showed (printed with the test's output) and do what a user would, then require the join.
    """
    joined = "window.mcu?.state === 'joined'"
    try:
        await page.wait_for(joined, timeout=JOIN_TIMEOUT)
        return
    except TimeoutError:
        state = await describe([page])
        print(f"a page had not joined after {JOIN_TIMEOUT} s; loading it again:\n{state}")
    await page.navigate(url)
    await page.wait_for(joined, timeout=JOIN_TIMEOUT)


@contextlib.asynccontextmanager
async def lossy_room(
    work_dir: Path,
    near: int = 1,
    link_index: int = 1,
    publish_only: int = 0,
    server_args: tuple[str, ...] = (),
    near_args: tuple[str, ...] = (),
) -> AsyncIterator[LossyRoom]:
    """Start a server, a link and the browsers; join everyone and wait until media flows both
    ways at every page (on a clean link). Everything is stopped and removed on the way out.

    The last `publish_only` near pages receive nothing (a room of many cameras costs the test
    machine one decoder per stream per page): the others still wait until they decode them.
    `server_args`: more flags for the server (`--no-adapt-downlinks`); `near_args`: for the
    near pages' browser."""
    server = ServerProcess(
        work_dir / "server", list(server_args), host="0.0.0.0", media_addresses=[]
    )
    async with contextlib.AsyncExitStack() as stack:
        await server.start()
        stack.push_async_callback(server.stop)
        link = await stack.enter_async_context(ImpairedLink(link_index))
        origin = f"http://{link.host_address}:{server.port}"
        far_browser = await stack.enter_async_context(
            Chromium(
                launcher=link.command(),
                extra_args=(
                    # Camera and microphone need a secure context; plain http on an address
                    # other than loopback is one only when named so.
                    f"--unsafely-treat-insecure-origin-as-secure={origin}",
                    # The flags that keep the browser off the internet name loopback only.
                    f"--proxy-bypass-list={link.host_address}",
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1,"
                    f" EXCLUDE localhost, EXCLUDE {link.host_address}",
                ),
            )
        )
        near_browser = await stack.enter_async_context(Chromium(extra_args=near_args))
        room_id = "lossy-consult"
        await server.create_room(room_id, "lossy-room-pass", title="Over a bad line")
        far_link = await server.invite(room_id, role="chair")
        urls = [with_name(origin, far_link, "Far clinic")]
        far = await far_browser.open(urls[0])
        near_pages = []
        for index in range(near):
            invite = await server.invite(room_id)
            urls.append(with_name(server.base_url, invite, f"Near {index + 1}"))
            near_pages.append(await near_browser.open(urls[-1]))
        room = LossyRoom(server=server, link=link, far=far, near=near_pages)
        try:
            for page, url in zip(room.pages, urls, strict=True):
                await joined_or_reloaded(page, url)
            receiving = room.pages[: len(room.pages) - publish_only]
            for page in room.pages[len(receiving) :]:
                await page.evaluate("window.mcu.subscribeForTest({participants: []})")
            await asyncio.gather(*(wait_for_media(page) for page in receiving))
            room.far_id = await far.evaluate("window.mcu.participantId")
            room.near_ids = [await page.evaluate("window.mcu.participantId") for page in near_pages]
            # Everyone decodes everyone else before the link is touched.
            for page in receiving:
                own = await page.evaluate("window.mcu.participantId")
                others = [pid for pid in [room.far_id, *room.near_ids] if pid != own]
                await page.wait_for(
                    "(async () => { const s = await window.mcu.stats();"
                    f" const want = new Set({others!r});"
                    " for (const i of s.inbound) if (i.kind === 'video' && i.framesDecoded > 0)"
                    " want.delete(i.participantId); return want.size === 0; })()",
                    timeout=JOIN_TIMEOUT,
                )
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            raise AssertionError(f"{exc}\n{await room.describe()}") from exc
        yield room
