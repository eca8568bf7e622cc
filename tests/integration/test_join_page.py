"""The join page's HTTP side over real HTTP: ``/r/{room}``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from mcu.server import WEB_ROOT
from mcu.signaling.joinpage import setup_join_page
from tests.support.server import ServerProcess


@dataclass
class Site:
    client: TestClient[web.Request, web.Application]

    async def get(self, path: str, token: str | None = None) -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        response = await self.client.get(path, headers=headers, allow_redirects=False)
        text = await response.text()
        body = await response.json() if response.content_type == "application/json" else text
        return response.status, body, response.headers


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    app = web.Application()
    setup_join_page(app, page=WEB_ROOT / "room.html")
    async with TestClient(TestServer(app)) as client:
        yield Site(client)


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


# ---------------------------------------------------------------- the server as deployed


async def test_the_server_serves_the_join_page_routes(server: ServerProcess) -> None:
    """``python -m mcu`` serves the page, and redirects a password out of its address."""
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
