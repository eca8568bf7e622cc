"""The REST admin API over real HTTP, with each real room store (SQLite for one node, Redis for
a cluster) and a fake live-room view."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from mcu.crypto.passwords import verify_password
from mcu.crypto.tokens import InviteSigner
from mcu.signaling.endpoints.admin import setup_admin_api
from mcu.signaling.rooms.records import RoomRecords
from tests.support.stores import STORE_KINDS, room_store

TOKEN = "admin-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = b"invite-secret-for-tests-32-bytes"


@dataclass
class FakeLiveRooms:
    """Stands in for the session layer: fixed head counts, remembers ended rooms."""

    counts: dict[str, int] = field(default_factory=dict)
    ended: list[tuple[str, str]] = field(default_factory=list)
    retitled: list[tuple[str, str]] = field(default_factory=list)

    def participant_count(self, room_id: str) -> int:
        return self.counts.get(room_id, 0)

    def retitle(self, room_id: str, title: str) -> None:
        self.retitled.append((room_id, title))

    async def end_room(self, room_id: str, reason: str) -> None:
        self.ended.append((room_id, reason))
        self.counts.pop(room_id, None)


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    store: RoomRecords
    live: FakeLiveRooms

    async def call(
        self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        response = await self.client.request(
            method, path, json=body, headers=AUTH if headers is None else headers
        )
        text = await response.text()
        return response.status, (await response.json() if text else None)


@pytest.fixture(params=STORE_KINDS)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    async with room_store(request.param, tmp_path) as store:
        live = FakeLiveRooms()
        app = web.Application()
        setup_admin_api(app, store=store, signer=InviteSigner(SECRET), admin_token=TOKEN, live=live)
        async with TestClient(TestServer(app)) as client:
            yield Api(client, store, live)


ROOM = {"id": "cardio-1", "title": "Cardiology follow-up", "password": "s3cret-pass"}


async def test_create_room(api: Api) -> None:
    before = time.time()
    status, body = await api.call(
        "POST",
        "/api/rooms",
        {**ROOM, "opens_at": "2030-01-01T09:00:00+01:00", "max_participants": 4},
    )
    assert status == 201
    assert set(body) == {
        "id",
        "title",
        "created_at",
        "opens_at",
        "closes_at",
        "max_participants",
        "auto_record",
        "kind",
        "viewer_password",
        "e2ee",
        "participants",
    }
    assert body["auto_record"] is False
    assert body["kind"] == "meeting" and body["viewer_password"] is False
    assert body["id"] == "cardio-1"
    assert body["title"] == "Cardiology follow-up"
    assert body["opens_at"] == "2030-01-01T08:00:00Z"
    assert body["closes_at"] is None
    assert body["max_participants"] == 4
    assert body["participants"] == 0

    record = await api.store.get("cardio-1")
    assert record is not None
    assert record.created_at >= before
    assert record.password_hash != ROOM["password"]
    assert await verify_password(record.password_hash, ROOM["password"])
    assert ROOM["password"] not in str(body) and record.password_hash not in str(body)


async def test_duplicate_room_is_409(api: Api) -> None:
    assert (await api.call("POST", "/api/rooms", ROOM))[0] == 201
    status, body = await api.call("POST", "/api/rooms", {**ROOM, "title": "Other"})
    assert status == 409
    assert body["error"] == "room_exists"
    record = await api.store.get("cardio-1")
    assert record is not None and record.title == "Cardiology follow-up"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**ROOM, "id": "has space"}, "id"),
        ({**ROOM, "id": "x" * 65}, "id"),
        ({**ROOM, "title": ""}, "title"),
        ({**ROOM, "title": "t" * 201}, "title"),
        ({**ROOM, "password": "short"}, "password"),
        ({**ROOM, "password": "p" * 257}, "password"),
        ({**ROOM, "opens_at": "tomorrow"}, "opens_at"),
        ({**ROOM, "opens_at": "2030-01-01T09:00:00"}, "opens_at"),  # no time zone
        ({**ROOM, "max_participants": 0}, "max_participants"),
        ({**ROOM, "max_participants": "4"}, "max_participants"),
        ({**ROOM, "owner": "me"}, "owner"),
        ({"title": "t", "password": "long-enough"}, "id"),
        (
            {**ROOM, "opens_at": "2030-01-02T00:00:00Z", "closes_at": "2030-01-01T00:00:00Z"},
            "closes_at",
        ),
        (["not", "an", "object"], "object"),
    ],
)
async def test_invalid_create_body_is_400_naming_the_field(api: Api, body: Any, field: str) -> None:
    status, reply = await api.call("POST", "/api/rooms", body)
    assert status == 400
    assert reply["error"] == "bad_request"
    assert field in reply["message"]
    assert await api.store.list() == []


async def test_malformed_json_is_400(api: Api) -> None:
    response = await api.client.post(
        "/api/rooms", data=b'{"id": "a", ', headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "bad_request"
    assert body["message"].startswith("malformed JSON")


async def test_oversized_body_is_413(api: Api) -> None:
    big = {**ROOM, "title": "x" * (70 * 1024)}
    status, body = await api.call("POST", "/api/rooms", big)
    assert status == 413
    assert body["error"] == "too_large"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789abcdef"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer"},
    ],
)
async def test_missing_or_wrong_token_is_401(api: Api, headers: dict[str, str]) -> None:
    for method, path, body in [
        ("GET", "/api/rooms", None),
        ("POST", "/api/rooms", ROOM),
        ("GET", "/api/rooms/cardio-1", None),
        ("DELETE", "/api/rooms/cardio-1", None),
        ("GET", "/api/no-such-route", None),
    ]:
        status, reply = await api.call(method, path, body, headers=headers)
        assert status == 401, (method, path)
        assert reply["error"] == "unauthorized"
        assert "message" in reply
    assert await api.store.list() == []


async def test_bearer_scheme_is_case_insensitive(api: Api) -> None:
    status, _ = await api.call("GET", "/api/rooms", headers={"Authorization": f"bearer {TOKEN}"})
    assert status == 200


async def test_get_and_list(api: Api) -> None:
    assert await api.call("GET", "/api/rooms") == (200, {"rooms": []})
    await api.call("POST", "/api/rooms", ROOM)
    await api.call("POST", "/api/rooms", {**ROOM, "id": "derm_2", "title": "Dermatology"})
    api.live.counts["cardio-1"] = 3

    status, body = await api.call("GET", "/api/rooms/cardio-1")
    assert status == 200
    assert body["participants"] == 3
    assert body["title"] == "Cardiology follow-up"

    status, body = await api.call("GET", "/api/rooms")
    assert status == 200
    assert [(room["id"], room["participants"]) for room in body["rooms"]] == [
        ("cardio-1", 3),
        ("derm_2", 0),
    ]


async def test_unknown_room_is_404(api: Api) -> None:
    for method, path, body in [
        ("GET", "/api/rooms/nope", None),
        ("PATCH", "/api/rooms/nope", {"title": "x"}),
        ("DELETE", "/api/rooms/nope", None),
        ("POST", "/api/rooms/nope/invites", {}),
    ]:
        status, reply = await api.call(method, path, body)
        assert status == 404, (method, path)
        assert reply["error"] == "not_found"
    assert api.live.ended == []


async def test_patch_changes_only_given_fields(api: Api) -> None:
    await api.call(
        "POST",
        "/api/rooms",
        {**ROOM, "closes_at": "2030-06-01T12:00:00Z", "max_participants": 6},
    )
    old = await api.store.get("cardio-1")
    assert old is not None

    status, body = await api.call("PATCH", "/api/rooms/cardio-1", {"title": "Renamed"})
    assert status == 200
    assert body["title"] == "Renamed"
    assert api.live.retitled == [("cardio-1", "Renamed")]  # the live room, if any, is told
    assert body["closes_at"] == "2030-06-01T12:00:00Z"
    assert body["max_participants"] == 6

    status, body = await api.call(
        "PATCH",
        "/api/rooms/cardio-1",
        {"closes_at": None, "max_participants": None, "opens_at": "2030-05-01T08:30:00Z"},
    )
    assert status == 200
    assert body["closes_at"] is None
    assert body["max_participants"] is None
    assert body["opens_at"] == "2030-05-01T08:30:00Z"

    status, _ = await api.call("PATCH", "/api/rooms/cardio-1", {"password": "a-new-password"})
    assert status == 200
    new = await api.store.get("cardio-1")
    assert new is not None
    assert new.created_at == old.created_at
    assert await verify_password(new.password_hash, "a-new-password")
    assert not await verify_password(new.password_hash, ROOM["password"])


async def test_patch_rejects_bad_values(api: Api) -> None:
    await api.call("POST", "/api/rooms", {**ROOM, "opens_at": "2030-01-02T00:00:00Z"})
    for body, name in [
        ({"title": None}, "title"),
        ({"password": "short"}, "password"),
        ({"id": "renamed"}, "id"),
        ({"closes_at": "2030-01-01T00:00:00Z"}, "closes_at"),  # before the stored opens_at
    ]:
        status, reply = await api.call("PATCH", "/api/rooms/cardio-1", body)
        assert status == 400, body
        assert name in reply["message"]
    record = await api.store.get("cardio-1")
    assert record is not None and record.title == ROOM["title"] and record.closes_at is None


async def test_delete_ends_the_live_room_first(api: Api) -> None:
    await api.call("POST", "/api/rooms", ROOM)
    api.live.counts["cardio-1"] = 2
    status, body = await api.call("DELETE", "/api/rooms/cardio-1")
    assert (status, body) == (204, None)
    assert api.live.ended == [("cardio-1", "deleted")]
    assert await api.store.get("cardio-1") is None
    assert (await api.call("GET", "/api/rooms/cardio-1"))[0] == 404


async def test_invites_verify_with_the_signer(api: Api) -> None:
    await api.call("POST", "/api/rooms", ROOM)
    record = await api.store.get("cardio-1")
    assert record is not None
    signer = InviteSigner(SECRET)

    before = time.time()
    status, body = await api.call(
        "POST", "/api/rooms/cardio-1/invites", {"role": "chair", "ttl_seconds": 3600}
    )
    assert status == 201
    assert set(body) == {"token", "url", "role", "expires_at"}
    assert body["role"] == "chair"
    url = urlsplit(body["url"])
    assert url.path == "/r/cardio-1"
    assert parse_qs(url.query) == {"invite": [body["token"]]}

    invite = signer.verify(
        body["token"], "cardio-1", now=before + 60, room_created_at=record.created_at
    )
    assert invite.role == "chair"
    assert before + 3600 <= invite.expires_at <= time.time() + 3600
    assert body["expires_at"].endswith("Z")

    # Defaults: a participant invite valid for a day.
    status, body = await api.call("POST", "/api/rooms/cardio-1/invites", {})
    assert status == 201
    invite = signer.verify(body["token"], "cardio-1", now=before)
    assert invite.role == "participant"
    assert invite.expires_at - invite.issued_at == 86_400


@pytest.mark.parametrize(
    "body",
    [
        {"role": "admin"},
        {"ttl_seconds": 59},
        {"ttl_seconds": 2_592_001},
        {"ttl_seconds": "3600"},
        {"role": "chair", "uses": 1},
    ],
)
async def test_invalid_invite_body_is_400(api: Api, body: dict[str, Any]) -> None:
    await api.call("POST", "/api/rooms", ROOM)
    status, reply = await api.call("POST", "/api/rooms/cardio-1/invites", body)
    assert status == 400
    assert reply["error"] == "bad_request"


async def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    status, body = await api.call("GET", "/api/nothing-here")
    assert status == 404 and body["error"] == "not_found"
    response = await api.client.put("/api/rooms", headers=AUTH)
    assert response.status == 405
    assert (await response.json())["error"] == "method_not_allowed"


async def test_oversized_chunked_body_is_413(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 1024

    response = await api.client.post("/api/rooms", data=chunks(), headers=AUTH)
    assert response.status == 413
    assert (await response.json())["error"] == "too_large"


async def test_lecture_room_with_viewer_password(api: Api) -> None:
    status, body = await api.call(
        "POST",
        "/api/rooms",
        {**ROOM, "id": "lesson-1", "kind": "lecture", "viewer_password": "watch-only-pw"},
    )
    assert status == 201, body
    assert body["kind"] == "lecture" and body["viewer_password"] is True
    record = await api.store.get("lesson-1")
    assert record is not None and record.viewer_password_hash is not None
    assert "watch-only-pw" not in record.viewer_password_hash
    status, body = await api.call("PATCH", "/api/rooms/lesson-1", {"viewer_password": None})
    assert status == 200 and body["viewer_password"] is False
    status, body = await api.call(
        "POST", "/api/rooms", {**ROOM, "id": "meet-1", "viewer_password": "watch-only-pw"}
    )
    assert status == 400 and "lecture" in body["message"]
    status, body = await api.call(
        "POST",
        "/api/rooms",
        {**ROOM, "id": "lesson-2", "kind": "lecture", "viewer_password": ROOM["password"]},
    )
    assert status == 400 and "differ" in body["message"]
    status, body = await api.call("POST", "/api/rooms/lesson-1/invites", {"role": "viewer"})
    assert status == 201 and body["role"] == "viewer"
    # A meeting is watched with a viewer invite too: the audience page, or a WHEP player.
    status, body = await api.call("POST", "/api/rooms", {**ROOM, "id": "meet-2"})
    assert status == 201, body
    status, body = await api.call("POST", "/api/rooms/meet-2/invites", {"role": "viewer"})
    assert status == 201 and body["role"] == "viewer"
    assert body["url"] == f"/r/meet-2?view&invite={body['token']}"
    assert body["whep"] == "/whep/meet-2"
    status, body = await api.call("POST", "/api/rooms/meet-2/invites", {"role": "participant"})
    assert status == 201 and "whep" not in body


async def test_patch_keeps_the_viewer_password_rules_of_creation(api: Api) -> None:
    lecture = {**ROOM, "id": "lesson-1", "kind": "lecture", "viewer_password": "watch-only-pw"}
    assert (await api.call("POST", "/api/rooms", lecture))[0] == 201
    assert (await api.call("POST", "/api/rooms", ROOM))[0] == 201
    refused = [
        # Equal to the stored room password, to a new one given alongside, or a new room
        # password equal to the stored viewer password: viewers would join as lecturers.
        ("lesson-1", {"viewer_password": ROOM["password"]}, "differ"),
        ("lesson-1", {"password": "both-the-same", "viewer_password": "both-the-same"}, "differ"),
        ("lesson-1", {"password": "watch-only-pw"}, "differ"),
        # A meeting has no viewer password, whether set on one or left by a change of kind.
        ("cardio-1", {"viewer_password": "watch-only-pw"}, "lecture"),
        ("lesson-1", {"kind": "meeting"}, "lecture"),
    ]
    for room, body, word in refused:
        status, reply = await api.call("PATCH", f"/api/rooms/{room}", body)
        assert status == 400 and word in reply["message"], (body, reply)
    record = await api.store.get("lesson-1")
    assert record is not None and record.kind == "lecture"
    assert await verify_password(record.viewer_password_hash or "", "watch-only-pw")
    # Allowed: clearing it together with the change of kind.
    status, reply = await api.call(
        "PATCH", "/api/rooms/lesson-1", {"kind": "meeting", "viewer_password": None}
    )
    assert status == 200 and reply["kind"] == "meeting" and reply["viewer_password"] is False


HUGE = "9" * 5000  # past Python's 4,300-digit limit for int() on a string


async def _raw(api: Api, method: str, path: str, text: str) -> tuple[int, Any]:
    # Sent as text: json.dumps cannot write a 5,000-digit integer either.
    response = await api.client.request(
        method, path, data=text.encode(), headers={**AUTH, "Content-Type": "application/json"}
    )
    return response.status, await response.json()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        # Valid ISO 8601 whose conversion to UTC leaves datetime's range (year 1 to 9999).
        ('"opens_at": "9999-12-31T23:59:59-14:00"', "opens_at"),
        ('"closes_at": "0001-01-01T00:00:00+14:00"', "closes_at"),
        ('"opens_at": "0001-01-01T00:00:00+14:00"', "opens_at"),
        ('"closes_at": "9999-12-31T23:59:59.999999-23:59"', "closes_at"),
        (f'"max_participants": {HUGE}', "max_participants"),
        (f'"max_participants": -{HUGE}', "max_participants"),
        ('"max_participants": 1e999', "max_participants"),
    ],
)
async def test_out_of_range_values_are_400_naming_the_field(
    api: Api, fields: str, field: str
) -> None:
    text = '{"id": "cardio-1", "title": "t", "password": "s3cret-pass", ' + fields + "}"
    status, reply = await _raw(api, "POST", "/api/rooms", text)
    assert status == 400, reply
    assert reply["error"] == "bad_request" and field in reply["message"], reply
    assert await api.store.list() == []

    await api.call("POST", "/api/rooms", ROOM)
    status, reply = await _raw(api, "PATCH", "/api/rooms/cardio-1", "{" + fields + "}")
    assert status == 400, reply
    assert reply["error"] == "bad_request" and field in reply["message"], reply
    status, room = await api.call("GET", "/api/rooms/cardio-1")
    assert status == 200 and room["opens_at"] is None and room["max_participants"] is None


@pytest.mark.parametrize("ttl", [HUGE, "-" + HUGE, "1e999"])
async def test_out_of_range_invite_ttl_is_400_naming_the_field(api: Api, ttl: str) -> None:
    await api.call("POST", "/api/rooms", ROOM)
    status, reply = await _raw(
        api, "POST", "/api/rooms/cardio-1/invites", f'{{"ttl_seconds": {ttl}}}'
    )
    assert status == 400, reply
    assert reply["error"] == "bad_request" and "ttl_seconds" in reply["message"], reply


async def test_an_e2ee_room_is_created_shown_listed_and_kept_from_recording(api: Api) -> None:
    status, body = await api.call("POST", "/api/rooms", {**ROOM, "e2ee": True})
    assert status == 201 and body["e2ee"] is True
    await api.call("POST", "/api/rooms", {**ROOM, "id": "plain"})
    assert (await api.call("GET", "/api/rooms/cardio-1"))[1]["e2ee"] is True
    listed = (await api.call("GET", "/api/rooms"))[1]["rooms"]
    assert [(room["id"], room["e2ee"]) for room in listed] == [("cardio-1", True), ("plain", False)]
    record = await api.store.get("cardio-1")
    assert record is not None and record.e2ee is True
    # Never recorded automatically: refused on creation and by a change.
    status, reply = await api.call(
        "POST", "/api/rooms", {**ROOM, "id": "both", "e2ee": True, "auto_record": True}
    )
    assert status == 400 and "auto_record" in reply["message"]
    status, reply = await api.call("PATCH", "/api/rooms/cardio-1", {"auto_record": True})
    assert status == 400 and "auto_record" in reply["message"]
    status, reply = await api.call("PATCH", "/api/rooms/plain", {"e2ee": None})
    assert status == 400 and "e2ee" in reply["message"]
    for bad in ("yes", 1, "true"):
        status, reply = await api.call("POST", "/api/rooms", {**ROOM, "id": "x", "e2ee": bad})
        assert status == 400 and "e2ee" in reply["message"], bad


async def test_e2ee_changes_only_while_nobody_is_in_the_room(api: Api) -> None:
    await api.call("POST", "/api/rooms", ROOM)
    api.live.counts["cardio-1"] = 2
    status, reply = await api.call("PATCH", "/api/rooms/cardio-1", {"e2ee": True})
    assert status == 409 and reply["error"] == "room_in_use"
    record = await api.store.get("cardio-1")
    assert record is not None and record.e2ee is False
    # Saying what it already is changes nothing, so it is no conflict.
    assert (await api.call("PATCH", "/api/rooms/cardio-1", {"e2ee": False}))[0] == 200
    api.live.counts.clear()
    status, body = await api.call("PATCH", "/api/rooms/cardio-1", {"e2ee": True})
    assert status == 200 and body["e2ee"] is True
