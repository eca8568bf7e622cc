"""End to end: the hospital platform's link, `/r/{room}?token=...`, in headless Chromium. The
page joins with the token (no password asked), as the name and role the token gives; a token
that cannot be used is refused with words a doctor understands."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from mcu.crypto.accesstokens import ApiKey, issue_access_token
from tests.e2e.chromium import CHROMIUM_PATH, Chromium, ChromiumError, chromium_available
from tests.e2e.room_page import JOIN_TIMEOUT, describe
from tests.support.room_client import joined_client
from tests.support.server import ServerProcess

pytestmark = pytest.mark.skipif(
    not chromium_available(),
    reason=f"no Chromium at {CHROMIUM_PATH} (Debian package `chromium`; CI installs it)",
)

SECRET = secrets.token_urlsafe(32)
PASSWORD = "county-line-secret"
KEY = ApiKey("his", secret=SECRET.encode())


@pytest.fixture
async def platform_server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(tmp_path / "server", env={"MCU_API_KEYS": f"his={SECRET}"})
    await process.start()
    try:
        yield process
    finally:
        assert await process.stop() == 0, process.log()[-4000:]


async def test_a_platform_link_joins_with_its_token(platform_server: ServerProcess) -> None:
    server = platform_server
    await server.create_room("cardio-7", PASSWORD, title="Cardiology consult")
    now = time.time()

    def link(**claims: Any) -> str:
        fields: dict[str, Any] = {"subject": "u-1", "role": "chair", "room": "cardio-7", "now": now}
        token = issue_access_token(KEY, ttl_seconds=300, **(fields | claims))
        # `name` in the address joins at once, as an invitation's "click to join" link does.
        return f"{server.base_url}/r/cardio-7?token={quote(token)}&name=typed"

    async with Chromium() as browser:
        pages = [
            await browser.open(link(name="Dr Wang")),
            await browser.open(link(name="Dr Li", now=now - 3600)),
        ]
        joined, expired = pages
        try:
            await joined.wait_for("mcu.state === 'joined'", timeout=JOIN_TIMEOUT)
            assert await joined.evaluate("document.getElementById('password-row').hidden")
            me = await joined.evaluate("mcu.participants.length === 0 && mcu.participantId")
            assert me, "joined alone"
            await expired.wait_for("mcu.state === 'error'", timeout=JOIN_TIMEOUT)
            assert await expired.evaluate("mcu.lastError.code") == "bad_token"
            error = await expired.evaluate("document.getElementById('join-error').textContent")
            assert "not valid or has expired" in error, error
            # The page joined as the token's chair, by the token's name: another participant
            # sees it so.
            nurse = await joined_client(server, "Nurse Wu", "cardio-7", password=PASSWORD)
            try:
                reply = next(m for m in nurse.messages if m["type"] == "joined")
                assert [(p["name"], p["role"]) for p in reply["participants"]] == [
                    ("Dr Wang", "chair")
                ], reply["participants"]
            finally:
                await nurse.close()
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc}\n{await describe(pages)}")
