"""Two real nodes (server processes with separate data directories) sharing one real Redis:
what one node's admin API does, the other sees and applies. Which node a client reaches is the
router's business; here each client connects to the node the test picks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.cluster import cluster_nodes
from tests.support.redis import RedisServer, redis_available
from tests.support.room_client import RoomClient, joined_client
from tests.support.server import ServerProcess

pytestmark = pytest.mark.skipif(redis_available() is not None, reason=f"{redis_available()}")

WAIT_S = 15.0


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    """Nodes A and B: one Redis, one cluster secret, one admin token, a data directory each."""
    async with RedisServer(tmp_path / "redis") as redis, cluster_nodes(tmp_path, redis) as both:
        yield both[0], both[1]


async def participants(node: ServerProcess, room: str, count: int) -> dict[str, object]:
    """The room as ``node`` lists it, once it shows ``count`` people (bounded wait)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        listing = await node.get_json("/api/rooms")
        entry = next(r for r in listing["rooms"] if r["id"] == room)
        if entry["participants"] == count or time.monotonic() > deadline:
            assert entry["participants"] == count, entry
            return dict(entry)
        await asyncio.sleep(0.2)


async def test_rooms_invites_counts_and_deletion_span_the_nodes(
    nodes: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = nodes
    await a.create_room("cardio-1", "correct horse", title="Cardiology")

    # Made on A: listed and fetched on B.
    listing = await b.get_json("/api/rooms")
    assert [room["id"] for room in listing["rooms"]] == ["cardio-1"]
    fetched = await b.get_json("/api/rooms/cardio-1")
    assert fetched["title"] == "Cardiology" and fetched["participants"] == 0
    async with b.http.post(
        b.base_url + "/api/rooms", json={"id": "cardio-1", "title": "x", "password": "another one"}
    ) as r:
        assert r.status == 409 and (await r.json())["error"] == "room_exists"  # fmt: skip

    # Minted on B: accepted by a join on A.
    invite = parse_qs(urlsplit(await b.invite("cardio-1", role="chair")).query)["invite"][0]
    chair = await joined_client(a, "Dr Li", "cardio-1", invite=invite)
    clients: list[RoomClient] = [chair]
    try:
        joined = next(m for m in chair.messages if m["type"] == "joined")
        assert joined["participant"]["role"] == "chair"

        # A's participant is counted in B's listing, and B's in A's: the sums agree.
        await participants(b, "cardio-1", 1)
        b_joiner = await joined_client(b, "Dr Wu", "cardio-1", password="correct horse")
        clients.append(b_joiner)
        await participants(a, "cardio-1", 2)
        assert (await participants(b, "cardio-1", 2))["title"] == "Cardiology"

        # Changed on B: A admits by the new password at once, not the old one.
        async with b.http.patch(
            b.base_url + "/api/rooms/cardio-1", json={"password": "battery staple"}
        ) as r:
            assert r.status == 200, await r.text()
        late = RoomClient(a.ws_url, "late")
        clients.append(late)
        await late.connect()
        refused = await late.join("cardio-1", password="correct horse", media="none")
        assert refused["type"] == "error" and refused["code"] == "wrong_password", refused
        assert (await late.join("cardio-1", password="battery staple", media="none"))[
            "type"
        ] == "joined"

        # Deleted on B: the session on A ends as it would on A itself.
        async with b.http.delete(b.base_url + "/api/rooms/cardio-1") as r:
            assert r.status == 204
        ended = await chair.wait_for(lambda m: m["type"] == "room_ended", timeout=WAIT_S)
        assert ended["reason"] == "deleted"
        await chair.wait_for(lambda m: m["type"] == "_socket_closed", timeout=WAIT_S)
        assert (await a.get_json("/api/rooms"))["rooms"] == []
    finally:
        for client in clients:
            await client.close()
