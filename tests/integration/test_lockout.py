"""Wrong passwords are limited per room and address, counted while in flight, shared by the
workers, and never stand in the way of a valid invite or of the address's other rooms."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp

from tests.support.room_client import RoomClient
from tests.support.server import ServerProcess
from tests.support.whip import post_sdp

OFFER = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


async def _join(server: ServerProcess, room: str, **credential: str) -> str:
    client = RoomClient(server.ws_url, "Dr Guess")
    await client.connect()
    try:
        reply = await client.join(room, **credential)
        return str(reply.get("code") or reply["type"])
    finally:
        await client.close()


async def test_a_burst_of_wrong_passwords_is_not_all_evaluated(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    await server.create_room("neuro-2", "battery staple")
    outcomes = Counter(
        await asyncio.gather(*(_join(server, "cardio-1", password=f"guess-{i}") for i in range(40)))
    )
    # Before, all 40 were hashed and answered wrong_password.
    assert outcomes["wrong_password"] <= 10, outcomes
    assert outcomes["rate_limited"] >= 30, outcomes
    # The same address (one hospital's NAT) still reaches its other rooms, and a valid invite
    # to this room is never refused because of the guesses.
    assert await _join(server, "neuro-2", password="battery staple") == "joined"
    invite = (await server.invite("cardio-1", role="chair")).split("invite=", 1)[1]
    assert await _join(server, "cardio-1", invite=invite) == "joined"
    assert await _join(server, "cardio-1", password="correct horse") == "rate_limited"


async def test_whep_guesses_on_every_worker_count_once(cluster: ServerProcess) -> None:
    await cluster.create_room(
        "lesson-1", "lecturers-only", "Lesson", kind="lecture", viewer_password="for-every-site"
    )
    statuses = []
    for i in range(14):
        status, _, _ = await post_sdp(cluster.base_url + "/whep/lesson-1", OFFER, f"wrong-{i}")
        statuses.append(status)
    # Workers share the room's counts (its home judges): 10 wrong answers, then refusals.
    # Before, each worker kept its own, and 14 guesses spread over two were all answered 401.
    assert statuses.count(401) == 10, statuses
    assert statuses[10:] == [429] * 4, statuses
    async with aiohttp.ClientSession() as http:
        async with http.get(cluster.base_url + "/healthz") as r:
            assert r.status == 200
