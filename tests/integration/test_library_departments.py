"""The library with the platform's staff tokens: what a staff member sees follows the token's
department; the admin token and admin tokens see everything. The real library application on a
real catalogue, over HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from mcu.crypto.accesstokens import AccessRole, AccessTokens, ApiKey, issue_access_token
from mcu.crypto.tokens import ShareSigner
from mcu.library.api import setup_library
from mcu.recorder.catalogue import Catalogue, LibraryItem
from mcu.signaling.rooms.store import DB_FILENAME, RoomStore

ADMIN_TOKEN = "library-departments-admin-token"
KEY = ApiKey("his", secret=b"library-department-test-signing-key")
NOW = time.time()
ITEMS = {"cardio": "Cardiology", "cardio2": "cardiology", "neuro": "Neurology", "all": None}


def token(role: AccessRole, department: str | None = None, jti: str | None = None) -> str:
    room = "cardio-1" if role in ("chair", "participant", "viewer") else None
    return issue_access_token(
        KEY, subject="u-9", role=role, room=room, department=department, ttl_seconds=600,
        now=time.time(), jti=jti,
    )  # fmt: skip


class Library:
    def __init__(self, client: TestClient[web.Request, web.Application], store: RoomStore):
        self.client, self.store = client, store

    async def call(self, method: str, path: str, bearer: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {bearer}"}
        async with self.client.request(method, path, headers=headers, **kwargs) as response:
            body = await response.json() if response.status != 204 else None
            return response.status, body

    async def titles(self, bearer: str) -> list[str]:
        status, body = await self.call("GET", "/api/library", bearer)
        assert status == 200, body
        return sorted(item["id"] for item in body["items"])


@pytest.fixture
async def library(tmp_path: Path) -> AsyncIterator[Library]:
    catalogue = await Catalogue.open(tmp_path)
    store = await RoomStore.open(tmp_path / DB_FILENAME)
    for number, (item_id, department) in enumerate(ITEMS.items()):
        await catalogue.create(
            LibraryItem(item_id, f"Lesson {number}", NOW - number, "upload", "complete",
                        department=department)
        )  # fmt: skip
    app = web.Application()
    setup_library(
        app,
        catalogue=catalogue,
        data_dir=tmp_path,
        master_key=b"m" * 32,
        admin_token=ADMIN_TOKEN,
        signer=ShareSigner(b"library-department-share-key-0123"),
        encrypt_uploads=False,
        tokens=AccessTokens([KEY]),
        revoked=store.token_revoked,
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Library(client, store)
    finally:
        await client.close()
        await catalogue.close()
        await store.close()


async def test_a_staff_token_sees_its_department_and_items_without_one(library: Library) -> None:
    cardiology = token("staff", "Cardiology")
    assert await library.titles(cardiology) == ["all", "cardio", "cardio2"]
    assert await library.titles(token("staff", "Neurology")) == ["all", "neuro"]
    assert await library.titles(token("staff")) == ["all"]
    # The admin token (bootstrap, operations) and an admin's token see every item.
    assert await library.titles(ADMIN_TOKEN) == sorted(ITEMS)
    assert await library.titles(token("admin", "Cardiology")) == sorted(ITEMS)
    # Another department's item does not exist for them: reading, editing, sharing, deleting.
    for method, path in (
        ("GET", "/api/library/neuro"),
        ("PATCH", "/api/library/neuro"),
        ("POST", "/api/library/neuro/share"),
        ("DELETE", "/api/library/neuro"),
        ("GET", "/library/neuro/play"),
    ):
        status, body = await library.call(method, path, cardiology, json={})
        assert (status, body["error"]) == (404, "not_found"), (method, path)
    status, body = await library.call("GET", "/api/library/cardio", cardiology)
    assert status == 200 and body["department"] == "Cardiology"
    # Nor can a staff member hand an item to another department, or to all of them.
    for department in ("Neurology", None):
        status, body = await library.call(
            "PATCH", "/api/library/cardio", cardiology, json={"department": department}
        )
        assert (status, body["error"]) == (403, "forbidden"), department
    status, body = await library.call(
        "PATCH", "/api/library/cardio", cardiology, json={"title": "Echo basics"}
    )
    assert status == 200 and body["title"] == "Echo basics"


async def test_staff_credentials_are_checked(library: Library) -> None:
    status, body = await library.call("GET", "/api/library", token("chair"))
    assert (status, body["error"]) == (403, "role_not_allowed")
    expired = issue_access_token(KEY, subject="u", role="staff", ttl_seconds=1, now=NOW - 3600)
    status, body = await library.call("GET", "/api/library", expired)
    assert (status, body["error"], body["message"]) == (
        401,
        "bad_token",
        "the access token has expired",
    )
    status, body = await library.call("GET", "/api/library", "not-the-admin-token")
    assert (status, body["error"]) == (401, "unauthorized")
    revoked = token("staff", "Cardiology", jti="gone")
    assert await library.titles(revoked) == ["all", "cardio", "cardio2"]
    await library.store.revoke_token("gone", time.time() + 600, now=time.time())
    status, body = await library.call("GET", "/api/library", revoked)
    assert (status, body["error"]) == (401, "bad_token")
