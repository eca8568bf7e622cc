"""Webhooks end to end: a real HTTP receiver on loopback gets every event of a session, signed,
in order per room, through failures; what cannot be delivered is listed for the admin."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import REGISTRY

from mcu.crypto.webhooksig import verify_signature
from mcu.signaling.endpoints.webhookqueue import RetryPolicy
from mcu.signaling.endpoints.webhooks import WebhookSender, setup_webhook_routes
from mcu.signaling.rooms.events import ParticipantJoined, RoomStarted
from tests.support.room_client import ColourTrack, RoomClient, ToneTrack, joined_client
from tests.support.server import ServerProcess, free_port

SECRET = "platform-signing-secret-for-tests"
ADMIN_TOKEN = "admin-token-for-the-tests"


class Receiver:
    """The platform's end: an aiohttp server on loopback that writes down what it gets and
    answers 500 to its first ``failures`` requests."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.requests: list[tuple[str, bytes]] = []
        "(X-Mcu-Signature, body) of every request, failed ones too."
        self.accepted: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/mcu"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((request.headers.get("X-Mcu-Signature", ""), body))
        if len(self.requests) <= self.failures:
            return web.Response(status=500, text="not now")
        self.accepted.append(json.loads(body))
        self.changed.set()
        return web.Response(status=204)

    async def wait_for(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """The events accepted once there are ``count`` (bounded by ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.accepted) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(self.accepted)} of {count} events: {self.accepted}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                pass
        return self.accepted

    def assert_all_signed(self) -> None:
        for header, body in self.requests:
            assert verify_signature(SECRET.encode(), header, body, now=time.time()), header


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = web.Application()
    app.router.add_post("/hooks/mcu", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_a_receiver_that_fails_twice_still_gets_every_event_in_order() -> None:
    async with receiving(Receiver(failures=2)) as receiver:
        sender = WebhookSender([receiver.url], SECRET.encode(), policy=RetryPolicy(0.05))
        failed_before = _sample("mcu_webhook_failed_attempts_total")
        emitted: dict[str, list[str]] = {"ward-1": [], "ward-2": []}
        for n in range(10):
            for room in emitted:
                event = (
                    RoomStarted(room, "meeting", "Ward")
                    if n == 0
                    else ParticipantJoined(room, f"p{n}", f"Doctor {n}", "participant")
                )
                sender.emit(event)
                emitted[room].append(event.type if n == 0 else f"p{n}")
        try:
            accepted = await receiver.wait_for(20, timeout=30)
        finally:
            await sender.close()
        assert len(receiver.requests) == 22  # two refused, each tried again
        assert _sample("mcu_webhook_failed_attempts_total") - failed_before == 2
        for room, expected in emitted.items():
            got = [
                e["type"] if e["type"] == "room.started" else e["data"]["participant_id"]
                for e in accepted
                if e["room"] == room
            ]
            assert got == expected, room
        assert len({e["id"] for e in accepted}) == 20
        receiver.assert_all_signed()


async def test_an_unreachable_receiver_leaves_its_events_listed() -> None:
    dead = f"http://127.0.0.1:{free_port()}/hooks?key=hidden"  # nothing listens there
    sender = WebhookSender([dead], SECRET.encode(), policy=RetryPolicy(0.01, max_attempts=2))
    app = web.Application()
    setup_webhook_routes(app, sender, admin_token=ADMIN_TOKEN)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    abandoned_before = _sample("mcu_webhook_events_dropped_total", {"reason": "retries_exhausted"})
    try:
        sender.emit(RoomStarted("ward-3", "meeting", "Ward 3"))
        sender.emit(ParticipantJoined("ward-3", "p1", "Dr Zhao", "chair"))
        for _ in range(200):  # both abandoned after two attempts each (bounded)
            if len(sender.outbox.undelivered) == 2:
                break
            await asyncio.sleep(0.02)
        url = f"http://127.0.0.1:{port}/api/webhooks/undelivered"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as refused:
                assert refused.status == 401  # the admin token is needed
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            async with http.get(url, headers=admin) as reply:
                assert reply.status == 200
                listing = await reply.json()
    finally:
        await sender.close()
        await runner.cleanup()
    assert listing["waiting"] == 0
    assert listing["receivers"] == [dead.split("?")[0]]  # the query may hold a credential
    assert [(e["type"], e["state"], e["reason"], e["attempts"]) for e in listing["events"]] == [
        ("room.started", "dropped", "retries_exhausted", 2),
        ("participant.joined", "dropped", "retries_exhausted", 2),
    ]
    first = listing["events"][0]
    assert first["event"]["id"] == first["id"] and first["event"]["data"]["title"] == "Ward 3"
    assert "ConnectionRefused" in first["last_error"] or "Connect" in first["last_error"]
    after = _sample("mcu_webhook_events_dropped_total", {"reason": "retries_exhausted"})
    assert after - abandoned_before == 2


async def test_a_recorded_consultation_reaches_the_platform_signed_and_in_order(
    tmp_path: Path,
) -> None:
    async with receiving(Receiver(failures=2)) as receiver:
        server = ServerProcess(
            tmp_path / "server",
            extra_args=["--webhook-url", receiver.url],
            env={"MCU_API_KEYS": f"platform={SECRET}"},
        )
        await server.start()
        try:
            await _consultation(server, receiver)
        finally:
            code = await server.stop()
        assert code == 0, server.log()[-4000:]


async def _consultation(server: ServerProcess, receiver: Receiver) -> None:
    await server.create_room("cardio-1", "correct horse", title="Cardiology")
    invite = (await server.invite("cardio-1", role="chair")).split("invite=", 1)[1]
    chair = await joined_client(server, "Dr Li", invite=invite)
    county = None
    try:
        await chair.send({"type": "chair", "action": "record", "active": True})
        started = await chair.wait_for(lambda m: m["type"] == "recording" and m["active"])
        await chair.publish(
            {"microphone": ToneTrack(500), "camera": ColourTrack((200, 30, 30))},
            video_codec="video/H264",
        )
        county = await joined_client(server, "County doctor", password="correct horse")
        chair_id = chair.participant_id or ""
        await county.wait_until(lambda: county.frames_from(chair_id, "video") > 10, timeout=30)
        await county.send({"type": "leave"})
        await receiver.wait_for(5, timeout=30)  # ... participant.left of the county doctor
        await chair.send({"type": "chair", "action": "record", "active": False})
        await chair.wait_for(lambda m: m["type"] == "recording" and not m["active"])
        await chair.send({"type": "leave"})
        events = await receiver.wait_for(9, timeout=120)  # the composite comes last
    finally:
        await chair.close()
        if county is not None:
            await county.close()

    recording_id = started["recording_id"]
    county_id = county.participant_id
    assert [(e["type"], e["data"]) for e in events] == [
        ("room.started", {"kind": "meeting", "title": "Cardiology"}),
        ("participant.joined", {"participant_id": chair_id, "name": "Dr Li", "role": "chair"}),
        ("recording.started", {"recording_id": recording_id}),
        (
            "participant.joined",
            {"participant_id": county_id, "name": "County doctor", "role": "participant"},
        ),
        (
            "participant.left",
            {"participant_id": county_id, "role": "participant", "reason": "left"},
        ),
        (
            "recording.finished",
            {
                "recording_id": recording_id,
                "duration_s": events[5]["data"]["duration_s"],
                "kept": True,
                "error": None,
            },
        ),
        ("participant.left", {"participant_id": chair_id, "role": "chair", "reason": "left"}),
        ("room.finished", {"reason": "empty"}),
        ("recording.ready", {"recording_id": recording_id, "composite": True}),
    ]
    assert events[5]["data"]["duration_s"] > 0
    assert {e["room"] for e in events} == {"cardio-1"} and len({e["id"] for e in events}) == 9
    times = [e["time"] for e in events]
    assert times == sorted(times)
    # The first event was refused twice and tried again: eleven requests, each signed.
    assert len(receiver.requests) == 11
    receiver.assert_all_signed()
    for _, body in receiver.requests:
        assert b"correct horse" not in body and invite.encode() not in body

    assert await server.metric("mcu_webhook_deliveries_total") == 9
    assert await server.metric("mcu_webhook_failed_attempts_total") == 2
    assert await server.metric("mcu_webhook_queue_depth") == 0
    listing = await server.get_json("/api/webhooks/undelivered")
    assert listing == {"receivers": [receiver.url], "waiting": 0, "events": []}
    async with server.http.get(
        server.base_url + "/api/webhooks/undelivered", headers={"Authorization": "Bearer nope"}
    ) as refused:
        assert refused.status == 401


async def test_each_worker_sends_its_rooms_and_the_front_lists_every_workers(
    tmp_path: Path,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/gone"  # a second receiver nobody serves
    async with receiving(Receiver()) as receiver:
        server = ServerProcess(
            tmp_path / "srv",
            workers=2,
            extra_args=["--webhook-url", receiver.url, "--webhook-url", dead],
            env={"MCU_API_KEYS": f"platform={SECRET}"},
        )
        clients = []
        try:
            await server.start()
            await server.create_room("ward-a", "correct horse")
            await server.create_room("ward-b", "battery staple")
            for room, password in (("ward-a", "correct horse"), ("ward-b", "battery staple")):
                client = RoomClient(server.ws_url, f"Dr {room}")
                await client.connect()
                clients.append(client)
                reply = await client.join(room, password=password, media="none")
                assert reply["type"] == "joined", reply
            events = await receiver.wait_for(4, timeout=30)
            # Meanwhile the dead receiver's first events wait on both workers, being retried.
            listing: dict[str, Any] = {}
            for _ in range(100):  # bounded: each worker's first attempt fails within moments
                listing = await server.get_json("/api/webhooks/undelivered")
                if {e["worker"] for e in listing["events"] if e["attempts"]} == {"0", "1"}:
                    break
                await asyncio.sleep(0.1)
        finally:
            for client in clients:
                await client.close()
            code = await server.stop()
        assert code == 0, server.log()[-4000:]
    by_room = {
        room: [e["type"] for e in events if e["room"] == room] for room in ("ward-a", "ward-b")
    }
    # The last ones went out as the clients left and the server stopped.
    sequence = ["room.started", "participant.joined", "participant.left", "room.finished"]
    assert by_room == {r: sequence for r in by_room}
    receiver.assert_all_signed()
    assert {e["worker"] for e in listing["events"]} == {"0", "1"}, listing
    assert {(e["receiver"], e["state"]) for e in listing["events"]} == {(dead, "waiting")}
    assert {e["room"] for e in listing["events"]} == {"ward-a", "ward-b"}
    assert listing["waiting"] == len(listing["events"]) == 4


async def test_a_name_no_utf8_can_carry_still_makes_a_valid_event() -> None:
    async with receiving(Receiver()) as receiver:
        sender = WebhookSender([receiver.url], SECRET.encode())
        try:
            sender.emit(ParticipantJoined("ward-1", "p1", "Dr \ud800 Wang 王", "chair"))
            (event,) = await receiver.wait_for(1, timeout=10)
        finally:
            await sender.close()
    assert event["data"]["name"] == "Dr \ud800 Wang 王"
    receiver.assert_all_signed()
