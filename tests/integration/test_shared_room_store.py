"""The cluster's shared state in a real Redis, in-process: the room store two nodes use at once
(atomic creation, updates that keep each other's fields, deletions announced), the deny list
expiring with its tokens, the change feed ending live rooms (and catching up after Redis comes
back), and live counts summed over sources whose entries have not expired."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from redis.asyncio import Redis

from mcu.contracts.cluster import ROOM_CHANGES_CHANNEL, RoomChange
from mcu.infra.redisconn import connect_redis, parse_redis_url
from mcu.signaling.rooms.changefeed import RoomChangeFeed
from mcu.signaling.rooms.livecounts import LiveCountBoard
from mcu.signaling.rooms.redisstore import RedisRoomStore
from mcu.signaling.rooms.session import Rooms
from mcu.signaling.rooms.store import RoomExists, RoomRecord, StoreError, StoreUnavailable
from tests.support.redis import RedisServer, redis_available

pytestmark = pytest.mark.skipif(redis_available() is not None, reason=f"{redis_available()}")

WAIT_S = 10.0
RECORD = RoomRecord(
    id="cardio-1",
    title="Cardiology",
    password_hash="$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    created_at=1_700_000_000.123456,
    opens_at=None,
    closes_at=1_900_000_000.5,
    max_participants=8,
    auto_record=True,
    kind="lecture",
    viewer_password_hash="$argon2id$v=19$viewer",
    e2ee=True,
)


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait (bounded in time and count) until ``condition`` holds."""
    deadline = time.monotonic() + WAIT_S
    for _ in range(1000):
        if await condition():
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {WAIT_S} s: {what}")


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    async with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[tuple[Redis, Redis]]:
    """Two clients of one Redis, as two nodes have."""
    a = connect_redis(parse_redis_url(redis_server.url()))
    b = connect_redis(parse_redis_url(redis_server.url()))
    yield a, b
    await a.aclose()
    await b.aclose()


async def test_a_room_round_trips_every_field(nodes: tuple[Redis, Redis]) -> None:
    a, b = (RedisRoomStore(client) for client in nodes)
    await a.create(RECORD)
    # What one node wrote, another reads back exactly (floats included).
    assert await b.get("cardio-1") == RECORD
    plain = replace(RECORD, id="a-1", closes_at=None, max_participants=None, auto_record=False)
    plain = replace(plain, kind="meeting", viewer_password_hash=None, e2ee=False)
    await b.create(plain)
    assert await a.list() == [plain, RECORD]
    assert await a.get("nobody") is None

    updated = await b.update("cardio-1", title="Cardiology B", closes_at=None, e2ee=False)
    assert updated == replace(RECORD, title="Cardiology B", closes_at=None, e2ee=False)
    assert await a.get("cardio-1") == updated
    assert await a.update("nobody", title="x") is None
    assert await a.update("not/an id", title="x") is None

    assert await b.delete("cardio-1")
    assert not await a.delete("cardio-1")
    assert await a.get("cardio-1") is None
    assert await a.list() == [plain]
    # An update racing a deletion brings back no half room.
    assert await a.update("cardio-1", title="ghost") is None
    assert await b.get("cardio-1") is None


async def test_two_nodes_creating_one_room_at_once_make_it_once(
    nodes: tuple[Redis, Redis],
) -> None:
    a, b = (RedisRoomStore(client) for client in nodes)
    for n in range(20):
        room = f"race-{n}"
        results = await asyncio.gather(
            a.create(replace(RECORD, id=room, title="from A")),
            b.create(replace(RECORD, id=room, title="from B")),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, RoomExists)]
        made = [r for r in results if isinstance(r, RoomRecord)]
        assert len(refused) == 1 and len(made) == 1, results
        # The room is whole and is the one that won, not a mix of the two.
        assert await a.get(room) == made[0]
    assert len(await b.list()) == 20


async def test_concurrent_updates_of_different_fields_are_both_kept(
    nodes: tuple[Redis, Redis],
) -> None:
    a, b = (RedisRoomStore(client) for client in nodes)
    await a.create(RECORD)
    for n in range(20):
        await asyncio.gather(
            a.update("cardio-1", title=f"title {n}"),
            b.update("cardio-1", max_participants=n + 1, opens_at=float(n)),
        )
        record = await a.get("cardio-1")
        assert record is not None
        assert (record.title, record.max_participants, record.opens_at) == (
            f"title {n}",
            n + 1,
            float(n),
        )
        assert record.password_hash == RECORD.password_hash


async def test_updates_and_deletions_are_announced_with_the_change(
    nodes: tuple[Redis, Redis],
) -> None:
    a, listener = nodes
    store = RedisRoomStore(a)
    await store.create(RECORD)
    async with listener.pubsub() as pubsub:
        await pubsub.subscribe(ROOM_CHANGES_CHANNEL)
        await store.update("cardio-1", password_hash="$argon2id$new", max_participants=None)
        await store.update("cardio-1")  # nothing changed: nothing announced
        await store.delete("cardio-1")
        await store.delete("cardio-1")  # already gone: nothing announced
        received: list[RoomChange] = []
        deadline = time.monotonic() + WAIT_S
        while len(received) < 2 and time.monotonic() < deadline:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                received.append(RoomChange.model_validate_json(message["data"]))
        assert received == [
            RoomChange(
                room="cardio-1", change="updated", fields=("password_hash", "max_participants")
            ),
            RoomChange(room="cardio-1", change="deleted"),
        ]
        # No value, and so no password hash, is ever announced.
        assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.3) is None


async def test_the_deny_list_expires_with_the_token(
    nodes: tuple[Redis, Redis], redis_server: RedisServer
) -> None:
    a, b = (RedisRoomStore(client) for client in nodes)
    now = time.time()
    await a.revoke_token("t-long", now + 600, now=now)
    await b.revoke_token("t-long", now + 60, now=now)  # a shorter entry lifts nothing
    await a.revoke_token("t-past", now - 1, now=now)  # already unusable: nothing kept
    assert await b.token_revoked("t-long", now)
    assert await b.token_revoked("t-long", now + 599)
    assert not await b.token_revoked("t-long", now + 600)
    assert not await a.token_revoked("t-past", now)
    assert not await a.token_revoked("never", now)
    ttl = int((await redis_server.command("PTTL", "mcu:revoked:t-long")).lstrip(":"))
    assert 59_000 < ttl <= 600_000
    assert await redis_server.command("EXISTS", "mcu:revoked:t-past") == ":0"
    # Redis drops the entry when the token ends.
    await a.revoke_token("t-short", time.time() + 0.3, now=time.time())
    assert await redis_server.command("EXISTS", "mcu:revoked:t-short") == ":1"

    async def gone() -> bool:
        return await redis_server.command("EXISTS", "mcu:revoked:t-short") == ":0"

    await until(gone, "the entry expired in Redis")


async def test_a_store_without_redis_says_so(tmp_path: Path) -> None:
    async with RedisServer(tmp_path / "r") as server:
        client = connect_redis(parse_redis_url(server.url()))
    try:
        with pytest.raises(StoreError, match="did not answer"):
            await RedisRoomStore(client).get("cardio-1")
        # Answered "try again" by the endpoints, as is the listing's sum of live counts.
        with pytest.raises(StoreUnavailable, match="did not answer"):
            await RedisRoomStore(client).get("cardio-1")
        with pytest.raises(StoreUnavailable, match="did not answer"):
            await LiveCountBoard(client, "http://10.0.0.1:8080/0", dict).participants()
    finally:
        await client.aclose()


def live_rooms(*ids: str) -> Rooms:
    rooms = Rooms([])
    for room_id in ids:
        rooms.get_or_create(room_id, "Consultation")
    return rooms


async def test_the_feed_ends_a_live_room_deleted_on_another_node(
    nodes: tuple[Redis, Redis], redis_server: RedisServer
) -> None:
    here, elsewhere = nodes
    rooms = live_rooms("cardio-1", "other")
    store = RedisRoomStore(elsewhere)
    await store.create(RECORD)
    await store.create(replace(RECORD, id="other"))
    feed = RoomChangeFeed(here, rooms, RedisRoomStore(here))
    feed.start()
    try:

        async def subscribed() -> bool:
            return feed.subscriptions == 1

        await until(subscribed, "subscribed")
        # Junk on the channel is dropped; the feed goes on.
        await redis_server.command("PUBLISH", ROOM_CHANGES_CHANNEL, '{"room":"cardio-1"}')
        await redis_server.command("PUBLISH", ROOM_CHANGES_CHANNEL, "not-json")
        await store.update("cardio-1", title="renamed")

        async def applied_update() -> bool:
            return feed.applied == 1

        await until(applied_update, "the update was received")
        assert set(rooms.rooms) == {"cardio-1", "other"}  # an update ends nothing
        # ...but a new title reaches the live room (newcomers and recordings get it).
        assert rooms.rooms["cardio-1"].title == "renamed"
        assert rooms.rooms["other"].title == "Consultation"
        await store.delete("cardio-1")

        async def ended() -> bool:
            return "cardio-1" not in rooms.rooms

        await until(ended, "the deleted room ended")
        assert set(rooms.rooms) == {"other"}
    finally:
        await feed.stop()


async def test_the_feed_subscribes_again_and_catches_up_after_redis_returns(
    tmp_path: Path,
) -> None:
    first = RedisServer(tmp_path / "first")
    await first.start()
    client = connect_redis(parse_redis_url(first.url()))
    store = RedisRoomStore(client)
    await store.create(RECORD)
    await store.create(replace(RECORD, id="deleted-meanwhile"))
    rooms = live_rooms("cardio-1", "deleted-meanwhile")
    feed = RoomChangeFeed(client, rooms, store)
    feed.start()
    second = RedisServer(tmp_path / "second")
    try:

        async def subscribed(times: int) -> bool:
            return feed.subscriptions == times

        await until(lambda: subscribed(1), "subscribed")
        # A deletion whose announcement the feed missed, then its connection cut.
        assert await first.command("DEL", "mcu:room:deleted-meanwhile") == ":1"
        assert await first.command("CLIENT", "KILL", "TYPE", "pubsub") == ":1"
        await until(lambda: subscribed(2), "subscribed again")

        async def caught_up() -> bool:
            return set(rooms.rooms) == {"cardio-1"}

        await until(caught_up, "the room deleted meanwhile ended")

        # Redis itself dies and another takes its place, empty: nothing of cardio-1 is left.
        await first.stop()
        second.port = first.port
        await second.start()
        await until(lambda: subscribed(3), "subscribed to the new server")

        async def emptied() -> bool:
            return not rooms.rooms

        await until(emptied, "the room the new server does not know ended")
        # And the new subscription hears deletions.
        rooms.get_or_create("new", "Consultation")
        await store.create(replace(RECORD, id="new"))
        assert await store.delete("new")
        await until(emptied, "a deletion after the return ended its room")
    finally:
        await feed.stop()
        await client.aclose()
        await second.stop()
        await first.stop()


async def test_live_counts_sum_every_source_until_it_expires(
    nodes: tuple[Redis, Redis], redis_server: RedisServer
) -> None:
    a_counts = {"cardio-1": 2, "lesson": 1}
    b_counts = {"cardio-1": 3}
    a = LiveCountBoard(nodes[0], "http://10.0.0.1:8080/0", lambda: a_counts)
    b = LiveCountBoard(nodes[1], "http://10.0.0.2:8080/0", lambda: b_counts, ttl_ms=500)
    await a.publish()
    await b.publish()
    assert await a.participants() == {"cardio-1": 5, "lesson": 1}
    # A source's own counts are taken as they are now, not as last written.
    a_counts["lesson"] = 4
    assert await a.participants() == {"cardio-1": 5, "lesson": 4}
    assert await b.participants() == {"cardio-1": 5, "lesson": 1}
    # A node that stops refreshing (it died) drops out once its entry expires.
    assert await redis_server.command("SCARD", "mcu:live") == ":2"

    async def b_expired() -> bool:
        return await a.participants() == {"cardio-1": 2, "lesson": 4}

    await until(b_expired, "the silent source's counts expired")
    assert await redis_server.command("SCARD", "mcu:live") == ":1"
    # A source that stops cleanly withdraws its counts at once.
    a.start()
    await a.stop()
    assert await b.participants() == {"cardio-1": 3}
    assert await redis_server.command("SCARD", "mcu:live") == ":0"
