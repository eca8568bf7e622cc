"""The server's log: participant ids, never names, one line per event whatever a client sends."""

from __future__ import annotations

import asyncio

from mcu.app.main import loggable_path
from tests.support.room_client import RoomClient
from tests.support.server import ServerProcess

SECRET_NAME = "Dr Wang Secret"


async def _wait_for(server: ServerProcess, text: str) -> str:
    for _ in range(50):  # bounded: 5 s
        log = server.log()
        if text in log:
            return log
        await asyncio.sleep(0.1)
    raise AssertionError(f"{text!r} not logged:\n{server.log()[-3000:]}")


async def test_joins_leaves_and_refusals_are_logged_by_id_only(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    client = RoomClient(server.ws_url, SECRET_NAME)
    await client.connect()
    try:
        assert (await client.join("cardio-1", password="wrong"))["code"] == "wrong_password"
        joined = await client.join("cardio-1", password="correct horse")
        assert joined["type"] == "joined"
        me = joined["participant"]["id"]
        await client.send({"type": "leave"})
        log = await _wait_for(server, f"{me} left")
    finally:
        await client.close()
    assert f"{me} joined as participant" in log
    assert "join refused from" in log and "(wrong_password)" in log
    assert SECRET_NAME not in log


async def test_a_request_cannot_forge_log_lines(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    # A percent-decoded newline in the path reaches the access log; a name with one reaches
    # the room's log lines.
    async with server.http.get(server.base_url + "/r/x%0AFORGED-PATH") as response:
        await response.read()
    client = RoomClient(server.ws_url, "Mallory\nFORGED-NAME")
    await client.connect()
    try:
        assert (await client.join("cardio-1", password="correct horse"))["type"] == "joined"
        await client.send({"type": "leave"})
        log = await _wait_for(server, "x\\x0aFORGED-PATH")
    finally:
        await client.close()
    lines = log.splitlines()
    assert not [line for line in lines if line.startswith("FORGED")], log[-3000:]


def test_session_urls_stay_out_of_the_access_log() -> None:
    assert loggable_path("/whep/lesson-1/0-AbCdEf") == "/whep/lesson-1/<session>"
    assert loggable_path("/whip/lesson-1/1-xyz") == "/whip/lesson-1/<session>"
    assert loggable_path("/whep/lesson-1") == "/whep/lesson-1"
    assert loggable_path("/r/lesson-1") == "/r/lesson-1"
