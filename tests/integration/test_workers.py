"""A front process and two workers: routing, merged metrics and health, restarts, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from mcu.contracts.cluster import (
    admit_path,
    relay_path,
    relays_path,
    room_exists_path,
    stage_path,
    viewers_path,
    worker_socket,
)
from tests.support.room_client import ColourTrack, RoomClient, ToneTrack, joined_client
from tests.support.server import ServerProcess


async def _health(server: ServerProcess) -> dict[str, Any]:
    health: dict[str, Any] = await server.get_json("/healthz")
    return health


async def test_health_metrics_internal_routes_and_unknown_rooms(cluster: ServerProcess) -> None:
    health = await _health(cluster)
    assert health["status"] == "ok", health
    assert [w["index"] for w in health["workers"]] == [0, 1]
    assert all(isinstance(w["pid"], int) and w["status"] == "ok" for w in health["workers"])
    assert {"rooms", "participants", "viewers"} <= health.keys()

    async with cluster.http.get(cluster.base_url + "/readyz") as r:
        assert r.status == 200, await r.text()

    async with cluster.http.get(cluster.base_url + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "a family appears twice"
    workers = {s.labels.get("worker") for f in families for s in f.samples}
    assert {"0", "1", "front"} <= workers
    info = next(f for f in families if f.name == "mcu_worker_info")
    assert {s.labels["worker"] for s in info.samples} == {"0", "1"}
    for name in ("mcu_asyncio_tasks", "mcu_threads"):
        gauge = next(f for f in families if f.name == name)
        assert gauge.type == "gauge"
        values = {s.labels["worker"]: s.value for s in gauge.samples}
        assert values.keys() == {"0", "1", "front"} and min(values.values()) >= 1, values

    async with cluster.http.get(cluster.base_url + "/internal/rooms/x/relays") as r:
        assert r.status == 404

    # On a worker's own socket the internal routes answer; a malformed body is a clear 400.
    async with aiohttp.ClientSession(
        connector=aiohttp.UnixConnector(path=str(worker_socket(cluster.data_dir, 0)))
    ) as worker:
        base = "http://localhost"
        async with worker.get(base + room_exists_path("no-such-room")) as r:
            assert r.status == 200 and await r.json() == {"exists": False}
        for path in (relays_path("x"), viewers_path("x"), admit_path("x"), stage_path("x")):
            for body in (b"", b"[]", b'{"worker": "one"}', b'{"video": [{"ssrc": -1}]'):
                async with worker.post(base + path, data=body) as r:
                    text = await r.text()
                    assert r.status == 400 and text.startswith("malformed "), (path, body, text)
        async with worker.delete(base + relay_path("x", 0).replace("/0", "/zero")) as r:
            assert r.status == 400, await r.text()
    assert (await _health(cluster))["status"] == "ok"

    client = RoomClient(cluster.ws_url, "nobody")
    await client.connect()
    try:
        reply = await client.join("no-such-room", password="whatever")
        assert reply["type"] == "error" and reply["code"] == "unknown_room", reply
    finally:
        await client.close()


async def test_rooms_get_homes_on_both_workers_and_media_flows(cluster: ServerProcess) -> None:
    await cluster.create_room("ward-a", "correct horse")
    await cluster.create_room("ward-b", "battery staple")
    clients: list[RoomClient] = []
    try:
        a1 = await joined_client(cluster, "a1", "ward-a", password="correct horse")
        clients.append(a1)
        a2 = await joined_client(cluster, "a2", "ward-a", password="correct horse")
        clients.append(a2)
        # Requests for rooms that do not exist give them no home and move no live room.
        for i in range(50):
            async with cluster.http.get(f"{cluster.base_url}/rooms/junk{i}/documents") as r:
                assert r.status in (401, 404, 405), await r.text()
        b1 = await joined_client(cluster, "b1", "ward-b", password="battery staple")
        clients.append(b1)
        # The admin API's room routes went to each room's home first; both rooms live somewhere.
        health = await _health(cluster)
        per_worker = [w["participants"] for w in health["workers"]]
        assert sorted(per_worker) == [1, 2], health
        assert health["participants"] == 3
        await _check_room_list(cluster, {"ward-a": 2, "ward-b": 1})

        await a1.publish({"microphone": ToneTrack(400), "camera": ColourTrack((200, 30, 30))})
        await a2.publish({"microphone": ToneTrack(700), "camera": ColourTrack((30, 200, 30))})
        for me, other in ((a1, a2), (a2, a1)):
            await me.wait_until(_hears(me, other.participant_id or ""), timeout=30)
    finally:
        for client in clients:
            await client.close()


async def _check_room_list(server: ServerProcess, participants: dict[str, int]) -> None:
    """``GET /api/rooms`` through the front counts the participants on every worker."""
    async with server.http.get(server.base_url + "/api/rooms") as r:
        assert r.status == 200, await r.text()
        assert r.content_type == "application/json"
        assert r.headers["Cache-Control"] == "no-store"
        rooms = (await r.json())["rooms"]
    assert {room["id"]: room["participants"] for room in rooms} == participants, rooms
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(server.base_url + "/api/rooms") as r:
            assert r.status == 401, await r.text()
            assert r.headers["WWW-Authenticate"].startswith("Bearer")


def _hears(me: RoomClient, peer: str) -> Callable[[], bool]:
    return lambda: me.frames_from(peer, "video") >= 5 and me.frames_from(peer, "audio") >= 10


async def _wait_ready(server: ServerProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with server.http.get(server.base_url + "/readyz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError(f"not ready again: {server.log()[-3000:]}")


async def test_killed_worker_is_restarted(cluster: ServerProcess) -> None:
    before = (await _health(cluster))["workers"][1]
    os.kill(before["pid"], signal.SIGKILL)
    await asyncio.sleep(0.3)
    async with cluster.http.get(cluster.base_url + "/readyz") as r:
        assert r.status == 503
    # The room list still answers, from the workers that are up.
    async with cluster.http.get(cluster.base_url + "/api/rooms") as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["rooms"] == []
    await _wait_ready(cluster, 30)
    after = (await _health(cluster))["workers"][1]
    assert after["pid"] != before["pid"] and after["restarts"] == 1
    assert after["status"] == "ok"
    assert "exited with code -9" in cluster.log()


async def test_uploads_and_ranges_stream_through_the_front(cluster: ServerProcess) -> None:
    body = b"%PDF-1.4\n" + b"% padding line of a large slide deck\n" * 60_000 + b"%%EOF\n"
    async with cluster.http.post(
        cluster.base_url + "/api/library", data=body, params={"title": "Deck"}
    ) as r:
        assert r.status == 201, await r.text()
        item = await r.json()
    status, whole = await cluster.download(item["play_url"])
    assert status == 200 and whole == body
    status, part = await cluster.download(item["play_url"], {"Range": "bytes=100000-100099"})
    assert status == 206 and part == body[100000:100100]


async def test_sigterm_tells_clients_through_the_front_and_exits_cleanly(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "srv", workers=2)
    try:
        await server.start()
        await server.create_room("ward-c", "correct horse")
        client = await joined_client(server, "c1", "ward-c", password="correct horse")
        try:
            assert server.process is not None
            server.process.terminate()
            ended = await client.wait_for(lambda m: m["type"] == "room_ended", timeout=15)
            assert "shutting down" in ended["reason"]
            await client.wait_for(lambda m: m["type"] == "_socket_closed", timeout=15)
            assert await asyncio.wait_for(server.process.wait(), 20) == 0
        finally:
            await client.close()
        assert "Traceback" not in server.log()
    finally:
        await server.stop()
