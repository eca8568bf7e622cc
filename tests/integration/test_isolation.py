"""A participant of room A learns nothing of room B and can do nothing to it: every route and
every message is tried with A's credentials (its password, its invites, a session token)."""

from __future__ import annotations

import io
import json
from typing import Any

import aiohttp
import numpy as np
from PIL import Image

from tests.support.room_client import ColourTrack, RoomClient, ToneTrack, joined_client
from tests.support.server import ServerProcess
from tests.support.whip import WhepViewer

A, B = "ward-a", "ward-b"
A_PASSWORD, B_PASSWORD = "password-of-a", "password-of-b"
B_SECRET_NAME = "Patient Bai"
OFFER = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def _png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 90, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _session_token(client: RoomClient) -> str:
    joined = next(m for m in client.messages if m["type"] == "joined")
    token: str = joined["session_token"]
    return token


async def test_room_a_credentials_reach_nothing_of_room_b(server: ServerProcess) -> None:
    await server.create_room(A, A_PASSWORD)
    await server.create_room(B, B_PASSWORD)
    a_chair = (await server.invite(A, role="chair")).split("invite=", 1)[1]
    a_viewer = (await server.invite(A, role="viewer")).split("invite=", 1)[1]
    b_viewer = (await server.invite(B, role="viewer")).split("invite=", 1)[1]
    a1 = await joined_client(server, "Dr A", room=A, invite=a_chair)
    b1 = await joined_client(server, B_SECRET_NAME, room=B, password=B_PASSWORD)
    b_watch = WhepViewer(server.base_url, B, b_viewer)
    try:
        await b1.publish({"microphone": ToneTrack(), "camera": ColourTrack((200, 40, 40))})
        b1_id = b1.participant_id or ""
        a_token = _session_token(a1)
        credentials = {
            "A password": A_PASSWORD,
            "A chair invite": a_chair,
            "A viewer invite": a_viewer,
            "A session token": a_token,
        }
        # B has a recording, a document and a WHEP viewer: things to leak or touch.
        async with server.http.post(
            f"{server.base_url}/api/rooms/{B}/recording", json={"active": True}
        ) as r:
            assert r.status == 200, await r.text()
            recording_id = (await r.json())["recording_id"]
        # Stopped at once: its library item stays, and shutdown has no long composite to wait for.
        async with server.http.post(
            f"{server.base_url}/api/rooms/{B}/recording", json={"active": False}
        ) as r:
            assert r.status == 200, await r.text()
        async with server.http.post(
            f"{server.base_url}/rooms/{B}/documents",
            data=_png(),
            headers={"Authorization": f"Bearer {_session_token(b1)}"},
        ) as r:
            assert r.status == 201, await r.text()
            b_document = (await r.json())["document_id"]
        assert (await b_watch.play())[0] == 201
        assert b_watch.location is not None

        async with aiohttp.ClientSession() as http:

            async def call(method: str, path: str, token: str, **kwargs: Any) -> int:
                headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
                async with http.request(
                    method, server.base_url + path, headers=headers, **kwargs
                ) as r:
                    body = await r.text()
                    assert B_SECRET_NAME not in body and b1_id not in body, (path, body)
                    return r.status

            for what, token in credentials.items():
                sdp = {"data": OFFER, "headers": {"Content-Type": "application/sdp"}}
                refused = {
                    ("POST", f"/whip/{B}"): await call("POST", f"/whip/{B}", token, **sdp),
                    ("POST", f"/whep/{B}"): await call("POST", f"/whep/{B}", token, **sdp),
                    ("DELETE", b_watch.location): await call("DELETE", b_watch.location, token),
                    ("POST", f"/rooms/{B}/documents"): await call(
                        "POST", f"/rooms/{B}/documents", token, data=_png()
                    ),
                    ("GET", f"/rooms/{B}/invite"): await call("GET", f"/rooms/{B}/invite", token),
                    ("GET", f"/api/rooms/{B}"): await call("GET", f"/api/rooms/{B}", token),
                    ("POST", f"/api/rooms/{B}/invites"): await call(
                        "POST", f"/api/rooms/{B}/invites", token, json={"role": "chair"}
                    ),
                    ("POST", f"/api/rooms/{B}/recording"): await call(
                        "POST", f"/api/rooms/{B}/recording", token, json={"active": False}
                    ),
                    ("GET", "/api/library"): await call("GET", "/api/library", token),
                    ("GET", f"/api/library/{recording_id}"): await call(
                        "GET", f"/api/library/{recording_id}", token
                    ),
                    ("GET", f"/library/{recording_id}/play"): await call(
                        "GET", f"/library/{recording_id}/play", token
                    ),
                    ("POST", f"/internal/rooms/{B}/admit"): await call(
                        "POST", f"/internal/rooms/{B}/admit", token, json={"token": token}
                    ),
                }
                allowed = {route: s for route, s in refused.items() if s < 400}
                assert not allowed, (what, allowed)

            # Joining B over the room protocol with any of A's credentials.
            for what, token in credentials.items():
                intruder = RoomClient(server.ws_url, "Intruder")
                await intruder.connect()
                try:
                    for credential in ({"password": token}, {"invite": token}):
                        reply = await intruder.join(B, **credential)
                        assert reply["type"] == "error", (what, credential, reply)
                finally:
                    await intruder.close()

        # A's chair names B's participant, B's document and B's tracks in every message.
        for action in ("mute", "remove", "promote", "demote"):
            reply = await a1.request(
                {"type": "chair", "action": action, "participant_id": b1_id, "source": "camera"}
            )
            assert reply["code"] == "unknown_participant", (action, reply)
        reply = await a1.request(
            {"type": "slides", "action": "show", "document_id": b_document, "page": 1}
        )
        assert reply["code"] == "unknown_document", reply
        await a1.send({"type": "subscription", "sources": ["camera"], "participants": [b1_id]})
        reply = await a1.request({"type": "ping"})
        assert reply["type"] == "pong"
        # Nothing of B reached A: no event, no track, no name; B saw nothing of A's attempts.
        # (Errors echo the id A itself sent, and nothing more.)
        events = json.dumps([m for m in a1.messages if m["type"] != "error"])
        assert b1_id not in events and B_SECRET_NAME not in events and B not in events
        errors = json.dumps([m for m in a1.messages if m["type"] == "error"])
        assert B_SECRET_NAME not in errors and B not in errors
        assert not [t for t in a1.received.values() if t.participant_id == b1_id]
        assert not [m for m in b1.messages if m["type"] in ("track_muted", "removed", "role")]
    finally:
        await b_watch.stop()
        await b1.close()
        await a1.close()
