"""Uploads in progress share a memory budget: past it one is refused (503), not buffered."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from mcu.app.config import Config
from mcu.app.server import create_app
from mcu.signaling.endpoints import uploads
from mcu.signaling.endpoints.uploads import UploadBudget

TOKEN = "admin-token-for-tests-0123456789"


def _png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 120, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


async def test_an_upload_past_the_budget_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limit is the boundary set small; what is under test is how uploads keep to it.
    budget = UploadBudget(limit=1024 * 1024)
    monkeypatch.setattr(uploads, "BUDGET", budget)
    app = await create_app(
        Config(data_dir=tmp_path, admin_token=TOKEN, media_addresses=["127.0.0.1"])
    )
    async with TestClient(TestServer(app)) as client:
        room = {"id": "cardio-1", "title": "Consult", "password": "correct horse"}
        r = await client.post("/api/rooms", json=room, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 201, await r.text()
        ws = await client.ws_connect("/ws")
        await ws.send_json(
            {"type": "join", "room": "cardio-1", "name": "Dr A", "password": "correct horse"}
        )
        joined = await ws.receive_json(timeout=10)
        auth = {"Authorization": f"Bearer {joined['session_token']}"}

        release = asyncio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            yield b"\x89PNG" + bytes(900 * 1024)  # holds most of the budget...
            await release.wait()  # ...until the second upload has been answered

        first = asyncio.create_task(
            client.post("/rooms/cardio-1/documents", data=slow_body(), headers=auth)
        )
        for _ in range(100):  # bounded: until the first upload holds its bytes
            if budget.used:
                break
            await asyncio.sleep(0.05)
        assert budget.used >= 900 * 1024
        second = await client.post(
            "/rooms/cardio-1/documents", data=_png() + bytes(200_000), headers=auth
        )
        assert second.status == 503, await second.text()
        assert (await second.json())["error"] == "busy" and second.headers["Retry-After"]
        release.set()
        await (await first).read()
        # Everything taken is given back: an upload fits again.
        assert budget.used == 0
        third = await client.post("/rooms/cardio-1/documents", data=_png(), headers=auth)
        assert third.status == 201, await third.text()
        await ws.close()
