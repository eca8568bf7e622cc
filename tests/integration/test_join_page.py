"""The join page's HTTP side over real HTTP: ``/r/{room}``, ``GET /rooms/{room}`` and
``GET /rooms/{room}/invite``, with a real SQLite store, invite signer and login throttle."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from mcu.app.server import WEB_ROOT
from mcu.crypto.tokens import InviteSigner
from mcu.signaling.endpoints.joinpage import setup_join_page
from mcu.signaling.rooms.store import DB_FILENAME, RoomRecord, RoomStore
from mcu.signaling.rooms.throttle import LoginThrottle
from tests.support.server import ServerProcess

SECRET = b"invite-secret-for-tests-32-bytes"
ADDRESS = "127.0.0.1"


@dataclass
class Site:
    client: TestClient[web.Request, web.Application]
    store: RoomStore
    signer: InviteSigner
    throttle: LoginThrottle

    async def get(self, path: str, token: str | None = None) -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        response = await self.client.get(path, headers=headers, allow_redirects=False)
        text = await response.text()
        body = await response.json() if response.content_type == "application/json" else text
        return response.status, body, response.headers


def room(room_id: str, title: str, kind: str = "meeting", **fields: Any) -> RoomRecord:
    values: dict[str, Any] = {
        "id": room_id,
        "title": title,
        "password_hash": "$argon2id$not-a-real-hash",
        "created_at": time.time() - 60,
        "opens_at": None,
        "closes_at": None,
        "max_participants": None,
        "auto_record": False,
        "kind": kind,
        "viewer_password_hash": None,
    }
    return RoomRecord(**(values | fields))


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    store = await RoomStore.open(tmp_path / DB_FILENAME)
    await store.create(room("cardio-1", "Cardiology consult"))
    await store.create(
        room("stroke-4", "Stroke care, lesson 4", "lecture", viewer_password_hash="$argon2id$x")
    )
    await store.create(room("secret-ward", "Oncology board, patient Wu"))
    signer, throttle = InviteSigner(SECRET), LoginThrottle()
    app = web.Application()
    setup_join_page(app, page=WEB_ROOT / "room.html", store=store, signer=signer, throttle=throttle)
    async with TestClient(TestServer(app)) as client:
        yield Site(client, store, signer, throttle)
    await store.close()


# ---------------------------------------------------------------- the page


@pytest.mark.parametrize(
    ("query", "location"),
    [
        ("name=Ann&password=hunter22", "/r/cardio-1?name=Ann"),
        ("password=hunter22", "/r/cardio-1"),
        ("view&invite=abc.def&password=", "/r/cardio-1?view&invite=abc.def"),
        ("name=Ann&Password=hunter22&codec=h264", "/r/cardio-1?name=Ann&codec=h264"),
        ("pass%77ord=hunter22&name=Ann", "/r/cardio-1?name=Ann"),
    ],
)
async def test_a_password_in_the_page_address_is_redirected_away(
    site: Site, query: str, location: str
) -> None:
    """A room password that reached the address (a native form submission) is not served
    back: the same address without it, not cached."""
    status, body, headers = await site.get(f"/r/cardio-1?{query}")
    assert status == 303
    assert headers["Location"] == location
    assert headers["Cache-Control"] == "no-store"
    assert "hunter22" not in body


async def test_the_page_is_served_when_no_password_is_in_the_address(site: Site) -> None:
    status, body, headers = await site.get("/r/cardio-1?view&invite=abc.def&name=Ann")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert 'id="join-form"' in body


async def test_a_natively_posted_join_form_comes_back_as_the_page(site: Site) -> None:
    """A form POST (the page's scripts never ran) is answered with the page's own address, the
    invitation kept, so the person can try again; the posted password goes nowhere."""
    response = await site.client.post(
        "/r/cardio-1?invite=abc.def",
        data={"name": "Ann", "password": "hunter22"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == "/r/cardio-1?invite=abc.def"
    assert "hunter22" not in await response.text()


# ---------------------------------------------------------------- public room information


async def test_room_info_is_the_title_kind_and_e2ee_only(site: Site) -> None:
    status, body, headers = await site.get("/rooms/cardio-1")
    assert status == 200
    # e2ee: whether the page must hold the room key (it asks for a passphrase without one).
    assert body == {
        "id": "cardio-1",
        "title": "Cardiology consult",
        "kind": "meeting",
        "e2ee": False,
    }
    assert headers["Cache-Control"] == "no-store"
    status, body, _ = await site.get("/rooms/stroke-4")
    # Not whether a viewer password is set, nor anything else of the record.
    assert body == {
        "id": "stroke-4",
        "title": "Stroke care, lesson 4",
        "kind": "lecture",
        "e2ee": False,
    }


@pytest.mark.parametrize("room_id", ["no-such-room", "x" * 65, "cardio-1 "])
async def test_an_unknown_room_is_404_and_counts_as_a_failed_attempt(
    site: Site, room_id: str
) -> None:
    now = time.time()
    for _ in range(2):
        site.throttle.address_failed(ADDRESS, now)
    status, body, _ = await site.get(f"/rooms/{room_id}")
    assert status == 404
    assert body["error"] == "unknown_room"
    assert room_id.strip() not in body["message"]
    # Two earlier failures and this one: the next is the first to be slowed down.
    assert site.throttle.address_failed(ADDRESS, time.time()) == 0.5


async def test_a_locked_out_address_learns_nothing(site: Site) -> None:
    now = time.time()
    for _ in range(30):  # an address probing room ids is locked out of every room
        site.throttle.address_failed(ADDRESS, now)
    invite = site.signer.issue("cardio-1", "chair", 3600)
    for path, token in (("/rooms/cardio-1", None), ("/rooms/cardio-1/invite", invite)):
        status, body, headers = await site.get(path, token)
        assert status == 429
        assert body["error"] == "rate_limited"
        assert int(headers["Retry-After"]) > 0
        assert "Cardiology" not in str(body)


# ---------------------------------------------------------------- invitations


@pytest.mark.parametrize("role", ["chair", "participant"])
async def test_an_invite_says_its_role_and_expiry(site: Site, role: str) -> None:
    issued = time.time()
    token = site.signer.issue("cardio-1", role, 7200, now=issued)
    status, body, headers = await site.get("/rooms/cardio-1/invite", token)
    assert status == 200
    assert body == {
        "room": {"id": "cardio-1", "title": "Cardiology consult", "kind": "meeting", "e2ee": False},
        "role": role,
        "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(round(issued + 7200))),
    }
    assert headers["Cache-Control"] == "no-store"


async def test_a_viewer_invite_to_a_lecture(site: Site) -> None:
    token = site.signer.issue("stroke-4", "viewer", 600)
    status, body, _ = await site.get("/rooms/stroke-4/invite", token)
    assert status == 200
    assert body["role"] == "viewer"


async def test_an_invite_without_a_token_is_401(site: Site) -> None:
    status, body, headers = await site.get("/rooms/cardio-1/invite")
    assert status == 401
    assert body["error"] == "unauthorized"
    assert headers["WWW-Authenticate"].startswith("Bearer")


async def test_bad_invites_are_refused_with_a_reason(site: Site) -> None:
    now = time.time()
    cases = {
        "invalid": "not-an-invitation",
        "expired": site.signer.issue("cardio-1", "chair", 60, now=now - 3600),
        "wrong_room": site.signer.issue("secret-ward", "chair", 3600),
        "too_long": "a" * 5000,
        "forged": InviteSigner(b"another-server-key-of-32-bytes!!").issue("cardio-1", "chair", 60),
    }
    replies = {what: await site.get("/rooms/cardio-1/invite", tok) for what, tok in cases.items()}
    reasons = {what: (status, body["reason"]) for what, (status, body, _) in replies.items()}
    assert reasons == {
        "invalid": (403, "invalid"),
        "expired": (403, "expired"),
        "wrong_room": (403, "wrong_room"),
        "too_long": (403, "invalid"),
        "forged": (403, "invalid"),
    }
    for _, body, headers in replies.values():
        assert body["error"] == "bad_invite" and body["message"]
        assert headers["Cache-Control"] == "no-store"
    # An invitation to another room says nothing about that room.
    wrong = str(replies["wrong_room"][1])
    assert "secret-ward" not in wrong and "Oncology" not in wrong and "Wu" not in wrong
    # Reloading an expired link must not lock anyone out: refusals are not failed attempts.
    assert len(site.throttle) == 0


async def test_an_invite_from_before_the_room_was_recreated_is_revoked(site: Site) -> None:
    token = site.signer.issue("cardio-1", "chair", 3600, now=time.time() - 10)
    record = await site.store.get("cardio-1")
    assert record is not None
    await site.store.delete("cardio-1")
    await site.store.create(dataclasses.replace(record, created_at=time.time()))
    status, body, _ = await site.get("/rooms/cardio-1/invite", token)
    assert (status, body["reason"]) == (403, "revoked")


async def test_a_viewer_invite_to_a_meeting_says_it_watches(site: Site) -> None:
    # A meeting is watched with a viewer invite (its participants see who watches).
    token = site.signer.issue("cardio-1", "viewer", 600)
    status, body, _ = await site.get("/rooms/cardio-1/invite", token)
    assert (status, body["role"], body["room"]["kind"]) == (200, "viewer", "meeting"), body


async def test_an_invite_to_an_unknown_room_is_404(site: Site) -> None:
    token = site.signer.issue("gone", "chair", 600)
    status, body, _ = await site.get("/rooms/gone/invite", token)
    assert (status, body["error"]) == (404, "unknown_room")


# ---------------------------------------------------------------- the server as deployed


async def test_the_server_serves_the_join_page_routes(server: ServerProcess) -> None:
    """``python -m mcu`` mounts these routes: the page, the redirect, the public information."""
    await server.create_room("cardio-1", "hunter22-pass", title="Cardiology consult")
    invite = (await server.invite("cardio-1", role="chair")).split("invite=", 1)[1]
    base = server.base_url
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(
            f"{base}/r/cardio-1?name=Ann&password=hunter22-pass", allow_redirects=False
        ) as r:
            assert (r.status, r.headers.get("Location")) == (303, "/r/cardio-1?name=Ann")
        async with anonymous.get(f"{base}/r/cardio-1?invite={invite}") as r:
            assert r.status == 200
        async with anonymous.get(f"{base}/rooms/cardio-1") as r:
            info = await r.json()
        assert info == {
            "id": "cardio-1",
            "title": "Cardiology consult",
            "kind": "meeting",
            "e2ee": False,
        }
        headers = {"Authorization": f"Bearer {invite}"}
        async with anonymous.get(f"{base}/rooms/cardio-1/invite", headers=headers) as r:
            grant = await r.json()
        assert (grant["role"], grant["room"]["title"]) == ("chair", "Cardiology consult")
