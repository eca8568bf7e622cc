"""Wrong passwords are limited per room and address, counted while in flight, shared by the
workers, and never stand in the way of a valid invite or of the address's other rooms."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path

import aiohttp

from tests.support.room_client import RoomClient
from tests.support.server import ServerProcess
from tests.support.whip import WhepViewer, post_sdp

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


async def test_a_burst_of_the_right_password_is_one_check(server: ServerProcess) -> None:
    # A lesson's sites behind one hospital address all join at once with its viewer password.
    await server.create_room(
        "lesson-1", "lecturers-only", "Lesson", kind="lecture", viewer_password="for-every-site"
    )
    outcomes = Counter(
        await asyncio.gather(
            *(_join(server, "lesson-1", password="for-every-site") for _ in range(40))
        )
    )
    # Before, each join was a check in flight of its own and all but 10 were rate_limited.
    assert outcomes == Counter({"joined": 40}), outcomes


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


async def test_whep_sessions_are_capped_per_address(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "srv", env={"MCU_MAX_WHEP_PER_ADDRESS": "2"})
    await server.start()
    viewers = [WhepViewer(server.base_url, "lesson-1", "for-every-site") for _ in range(4)]
    try:
        await server.create_room(
            "lesson-1", "lecturers-only", "Lesson", kind="lecture", viewer_password="for-every-site"
        )
        statuses = [(await v.play())[0] for v in viewers[:3]]
        # Before, any number were served to one address.
        assert statuses == [201, 201, 429], statuses
        assert await viewers[0].stop() == 200
        assert (await viewers[3].play())[0] == 201  # a freed place is taken again
        assert await server.metric("mcu_whep_refused_address_total") == 1
    finally:
        for viewer in viewers:
            with contextlib.suppress(Exception):
                await viewer.stop()
        assert await server.stop() == 0, server.log()[-3000:]
