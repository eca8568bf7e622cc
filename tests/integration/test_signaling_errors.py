"""Bad input gets a clear error and never disturbs the server or another room."""

from __future__ import annotations

import asyncio
import json

from tests.support.room_client import ColourTrack, RoomClient, ToneTrack
from tests.support.server import ServerProcess


async def _client(server: ServerProcess, name: str = "x") -> RoomClient:
    client = RoomClient(server.ws_url, name)
    await client.connect()
    return client


async def test_wrong_password_unknown_room_and_bad_invite(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    client = await _client(server)
    try:
        reply = await client.join("cardio-1", password="wrong")
        assert (reply["type"], reply["code"]) == ("error", "wrong_password")
        reply = await client.join("no-such-room", password="correct horse")
        assert reply["code"] == "unknown_room"
        reply = await client.join("cardio-1", invite="forged.token.value")
        assert reply["code"] == "bad_invite"
        # Not joined: room actions are refused, the socket still works.
        reply = await client.request({"type": "mute", "source": "camera", "muted": True})
        assert reply["code"] == "not_joined"
        assert (await client.request({"type": "ping"}))["type"] == "pong"
        reply = await client.join("cardio-1", password="correct horse")
        assert reply["type"] == "joined"
        reply = await client.join("cardio-1", password="correct horse")
        assert reply["code"] == "already_joined"
    finally:
        await client.close()


async def test_invite_for_another_room_is_refused(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    await server.create_room("neuro-2", "battery staple")
    link = await server.invite("neuro-2")
    token = link.split("invite=", 1)[1]
    client = await _client(server)
    try:
        assert (await client.join("cardio-1", invite=token))["code"] == "bad_invite"
        assert (await client.join("neuro-2", invite=token))["type"] == "joined"
    finally:
        await client.close()


async def test_garbage_never_disturbs_a_live_room(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    await server.create_room("other", "another password")
    a, b = await _client(server, "a"), await _client(server, "b")
    attacker = await _client(server, "attacker")
    try:
        for c in (a, b):
            assert (await c.join("cardio-1", password="correct horse"))["type"] == "joined"
            await c.publish({"microphone": ToneTrack(), "camera": ColourTrack((90, 90, 90))})
        await a.wait_until(lambda: a.frames_from(b.participant_id or "", "video") > 5)

        garbage = [
            "{not json",
            "[]",
            "null",
            '"a string"',
            json.dumps({"type": "join"}),
            json.dumps({"type": "publish", "sdp": "v=0", "tracks": []}),
            json.dumps({"type": "subscribe_answer", "sdp": "garbage"}),
            json.dumps({"type": "chair", "action": "end"}),
            json.dumps({"type": "x" * 10000}),
            '{"type": "ping", "id": ' + "9" * 5000 + "}",  # beyond int()'s 4,300 digits
            "x" * 200_000,  # over the 128 KiB frame limit
        ]
        for text in garbage:
            await attacker.send_raw(text)
        await attacker.wait_until(
            lambda: sum(m["type"] == "error" for m in attacker.messages) == len(garbage)
        )
        codes = [m["code"] for m in attacker.messages if m["type"] == "error"]
        assert codes.count("too_large") == 1 and codes.count("bad_json") == 1
        assert "not_joined" in codes and all(m.get("message") for m in attacker.messages)
        assert "internal" not in codes
        assert any("id:" in m.get("message", "") for m in attacker.messages)

        # The attacker joins another room and sends a broken offer: a clear error, still joined.
        assert (await attacker.join("other", password="another password"))["type"] == "joined"
        reply = await attacker.request(
            {
                "type": "publish",
                "sdp": "v=0\r\nnonsense",
                "tracks": [{"mid": "0", "source": "camera"}],
            }
        )
        assert reply["code"] == "bad_sdp"
        reply = await attacker.request({"type": "chair", "action": "end"})
        assert reply["code"] == "forbidden"
        assert (await attacker.request({"type": "ping"}))["type"] == "pong"

        # Meanwhile the consultation kept flowing.
        before = a.frames_from(b.participant_id or "", "video")
        await a.wait_until(lambda: a.frames_from(b.participant_id or "", "video") > before + 10)
        health = await (await server.http.get(server.base_url + "/healthz")).json()
        assert health["participants"] == 3
    finally:
        for c in (a, b, attacker):
            await c.close()


async def test_room_full_and_schedule_window(server: ServerProcess) -> None:
    body = {"id": "small", "title": "Small", "password": "correct horse", "max_participants": 1}
    async with server.http.post(server.base_url + "/api/rooms", json=body) as r:
        assert r.status == 201
    later = {
        "id": "tomorrow",
        "title": "Lesson",
        "password": "correct horse",
        "opens_at": "2099-01-01T08:00:00Z",
        "closes_at": "2099-01-01T10:00:00Z",
    }
    async with server.http.post(server.base_url + "/api/rooms", json=later) as r:
        assert r.status == 201
    first, second = await _client(server, "first"), await _client(server, "second")
    try:
        assert (await first.join("small", password="correct horse"))["type"] == "joined"
        assert (await second.join("small", password="correct horse"))["code"] == "room_full"
        assert (await second.join("tomorrow", password="correct horse"))["code"] == "room_not_open"
        await first.send({"type": "leave"})
        await first.wait_for(lambda m: m["type"] == "_socket_closed")
        assert (await second.join("small", password="correct horse"))["type"] == "joined"
    finally:
        await first.close()
        await second.close()


async def test_tokens_in_urls_stay_out_of_the_access_log(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    link = await server.invite("cardio-1")
    async with server.http.get(server.base_url + link) as r:
        assert r.status == 200
    token = link.split("invite=", 1)[1]
    for _ in range(50):  # the line is written once the response is done
        log = server.log()
        if '"GET /r/cardio-1"' in log:
            break
        await asyncio.sleep(0.1)
    assert '"GET /r/cardio-1"' in log  # the request is logged...
    assert token not in log  # ...without its invite token
