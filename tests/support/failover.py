"""What clients do after a node dies, as tests drive them: a WHIP tool publishing again, a
WHEP player asking again, a participant joining again, each retried (bounded) the way OBS,
GStreamer and the browser client do, and the time until it worked measured from the failure."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
from aiortc import MediaStreamTrack

from tests.support.room_client import RoomClient
from tests.support.server import ServerProcess
from tests.support.whip import WhepViewer, WhipPublisher

RETRY_S = 0.5
"Between attempts (the browser client starts at 0.5 s; OBS waits a few seconds)."
RECOVERY_BOUND_S = 40.0
"Longest a test waits for the service to come back after a failure."


def _give_up(started: float, what: str) -> None:
    assert time.monotonic() - started < RECOVERY_BOUND_S, f"{what}: not within {RECOVERY_BOUND_S} s"


async def publish_again(
    node: ServerProcess, room: str, token: str, tracks: list[MediaStreamTrack], name: str
) -> WhipPublisher:
    """A WHIP tool re-POSTing its offer to ``node`` until it is taken (201)."""
    started = time.monotonic()
    while True:
        publisher = WhipPublisher(node.base_url, room, token)
        try:
            status, body = await publisher.publish(tracks, name=name)
        except (aiohttp.ClientError, OSError):
            status, body = 0, "no answer"
        if status == 201:
            return publisher
        await publisher.pc.close()
        assert status in (0, 502, 503), (status, body)
        _give_up(started, f"WHIP to {node.base_url}")
        await asyncio.sleep(RETRY_S)


async def watch_again(
    node: ServerProcess, room: str, token: str, frames: int = 5, name: str = ""
) -> WhepViewer:
    """A WHEP player re-POSTing to ``node`` (following a 307) until it decodes ``frames``
    video frames."""
    started = time.monotonic()
    while True:
        viewer = WhepViewer(node.base_url, room, token)
        try:
            status, body = await viewer.play(name=name)
        except (aiohttp.ClientError, OSError):
            status, body = 0, "no answer"
        if status == 201:
            with contextlib.suppress(TimeoutError):
                await viewer.wait_until(lambda v=viewer: v.frames("video") >= frames, timeout=15)
                return viewer
            status, body = 0, "no picture"
        await drop_viewer(viewer)
        assert status in (0, 404, 502, 503), (status, body)
        _give_up(started, f"WHEP to {node.base_url}")
        await asyncio.sleep(RETRY_S)


async def join_again(node: ServerProcess, name: str, room: str, **join: str) -> RoomClient:
    """A participant joining through ``node`` until it is in the room (a join refused with
    "try again", or a socket closed, is made again, as the browser client does)."""
    started = time.monotonic()
    while True:
        client = RoomClient(node.ws_url, name)
        reply: dict[str, Any] = {}
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            await client.connect()
            reply = await _join_or_closed(client, room, join)
        if reply.get("type") == "joined":
            return client
        await client.close()
        _give_up(started, f"join through {node.base_url} ({reply})")
        await asyncio.sleep(RETRY_S)


async def _join_or_closed(client: RoomClient, room: str, join: dict[str, str]) -> dict[str, Any]:
    """The reply to a join, or ``{}`` as soon as the server closes the socket instead ("try
    again", 1013) rather than after the client's whole reply timeout."""
    joining = asyncio.create_task(client.join(room, **join))
    deadline = time.monotonic() + 20
    while not joining.done():
        if client._ws is None or client._ws.closed or time.monotonic() > deadline:
            joining.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await joining
            return {}
        await asyncio.sleep(0.05)
    return joining.result()


async def drop_viewer(viewer: WhepViewer) -> None:
    """Forget a player whose node is gone (no DELETE: there is nobody to answer it)."""
    for task in viewer._tasks:
        task.cancel()
    await viewer.pc.close()


async def until_unlisted(survivor: ServerProcess, node_id: str, started: float) -> float:
    """Seconds from ``started`` until ``survivor``'s registry no longer lists ``node_id``."""
    while True:
        with contextlib.suppress(aiohttp.ClientError, AssertionError):
            listed = await survivor.get_json("/api/cluster/nodes")
            if node_id not in {n["node"] for n in listed["nodes"]}:
                return time.monotonic() - started
        _give_up(started, f"{node_id} still listed")
        await asyncio.sleep(0.1)
