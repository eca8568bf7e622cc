"""End to end: the join page in headless Chromium, before and after its scripts arrive.

On a slow county link people type and press Join while the page's scripts are still on the way.
These tests hold `app.js` back (CDP Fetch), act on the bare HTML form as a person would, and
check that the room password never reaches a URL and an invitation is never lost; then that the
page names the room by its title and says what an invitation grants, or why it cannot be used.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest

from mcu.crypto.secrets import load_or_create_secret
from mcu.crypto.tokens import InviteSigner
from tests.e2e.chromium import (
    CHROMIUM_PATH,
    Chromium,
    ChromiumError,
    HeldRequests,
    Page,
    chromium_available,
    record_requests,
)
from tests.e2e.room_page import JOIN_TIMEOUT, click, describe

pytestmark = pytest.mark.skipif(
    not chromium_available(),
    reason=f"no Chromium at {CHROMIUM_PATH} (Debian package `chromium`; CI installs it)",
)

PASSWORD = "county-line-secret"
READY = "!!window.mcu && !document.getElementById('join-button').disabled"


def text_of(element_id: str) -> str:
    return f"document.getElementById({json.dumps(element_id)}).textContent.trim()"


async def focus(page: Page, element_id: str) -> None:
    await page.evaluate(f"document.getElementById({json.dumps(element_id)}).focus(); true")


async def type_into(page: Page, element_id: str, text: str) -> None:
    """Focus a field and type into it (CDP input, as a keyboard would)."""
    await focus(page, element_id)
    await page.send("Input.insertText", {"text": text})


async def press_enter(page: Page) -> None:
    """Press Enter in the focused field (a form's implicit submission)."""
    key = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
    await page.send("Input.dispatchKeyEvent", {"type": "keyDown", "text": "\r", **key})
    await page.send("Input.dispatchKeyEvent", {"type": "keyUp", **key})


async def open_without_scripts(browser: Chromium, url: str) -> tuple[Page, HeldRequests, list[str]]:
    """`url` in a new tab whose `app.js` is held back: the bare HTML form, parsed and usable."""
    page = await browser.new_page()
    requests = await record_requests(page)
    scripts = HeldRequests(page, "*/static/app.js")
    await scripts.start()
    await page.navigate(url)
    await scripts.wait_held()
    await page.wait_for("document.readyState === 'interactive'")
    return page, scripts, requests


async def history(page: Page) -> list[str]:
    entries = (await page.send("Page.getNavigationHistory"))["entries"]
    return [entry["url"] for entry in entries]


async def test_an_early_join_never_puts_the_password_in_the_url(server: Any) -> None:
    """Join clicked, then Enter pressed, before the scripts load: nothing is submitted natively
    (which would put `?name=...&password=...` in the address bar, history and server logs); once
    the scripts arrive the same form joins."""
    room = "e2e-early"
    await server.create_room(room, PASSWORD, title="Early birds")
    url = f"{server.base_url}/r/{room}"
    async with Chromium() as browser:
        page, scripts, requests = await open_without_scripts(browser, url)
        try:
            await type_into(page, "name", "Dr Early")
            await type_into(page, "password", PASSWORD)
            await click(page, "#join-button")
            await focus(page, "password")
            await press_enter(page)
            await scripts.release()
            await page.wait_for(READY, timeout=JOIN_TIMEOUT)

            leaked = [u for u in requests if PASSWORD in u or "password=" in u]
            assert leaked == [], leaked
            assert await page.evaluate("location.href") == url
            assert not [u for u in await history(page) if "password" in u]
            # What was typed early is still there, and joins once the page is ready.
            assert await page.evaluate("document.getElementById('name').value") == "Dr Early"
            await click(page, "#join-button")
            await page.wait_for("window.mcu.state === 'joined'", timeout=JOIN_TIMEOUT)
            assert await page.evaluate("mcu.role") == "participant"
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc}\n{await describe([page])}")


async def test_an_early_join_on_an_invite_link_keeps_the_invite(server: Any) -> None:
    """Join clicked on an invitation link before the scripts load: the invite stays in the
    address, and the page then joins with the role it grants."""
    room = "e2e-early-invite"
    await server.create_room(room, PASSWORD, title="Early invite")
    link = await server.invite(room, role="chair")
    url = server.base_url + link
    async with Chromium() as browser:
        page, scripts, requests = await open_without_scripts(browser, url)
        try:
            await type_into(page, "name", "Dr Chair")
            await click(page, "#join-button")
            await scripts.release()
            await page.wait_for(READY, timeout=JOIN_TIMEOUT)

            assert await page.evaluate("location.href") == url
            assert not [u for u in requests if "password=" in u or "name=" in u], requests
            await page.wait_for(f"{text_of('invite-note')}.startsWith('You are invited as chair')")
            await click(page, "#join-button")
            await page.wait_for("window.mcu.state === 'joined'", timeout=JOIN_TIMEOUT)
            assert await page.evaluate("mcu.role") == "chair"
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc}\n{await describe([page])}")


async def test_join_pages_show_the_title_and_what_an_invite_grants(server: Any) -> None:
    """The room's title heads the page (its id small beside it); an invitation says the role it
    grants, and an expired or forged one says so before anyone types."""
    await server.create_room("cardio-7", PASSWORD, title="Cardiology consult")
    await server.create_room(
        "stroke-4",
        PASSWORD,
        title="Stroke care, lesson 4",
        kind="lecture",
        viewer_password="audience-pass",
    )
    participant = await server.invite("cardio-7")
    viewer = await server.invite("stroke-4", role="viewer")
    signer = InviteSigner(load_or_create_secret(server.data_dir, "invite-key"))
    expired = signer.issue("cardio-7", "chair", 60, now=time.time() - 3600)
    base = server.base_url
    urls = {
        "password": f"{base}/r/cardio-7",
        "participant": base + participant,
        "viewer": base + viewer,
        "expired": f"{base}/r/cardio-7?invite={quote(expired)}",
        "forged": f"{base}/r/cardio-7?invite=not-an-invitation",
        "unknown": f"{base}/r/no-such-room",
    }
    async with Chromium() as browser:
        pages = {what: await browser.open(url) for what, url in urls.items()}
        try:
            page = pages["password"]
            await page.wait_for(READY, timeout=JOIN_TIMEOUT)
            assert await page.evaluate(text_of("room-label")) == "Cardiology consult"
            assert await page.evaluate(text_of("room-id")) == "cardio-7"
            assert (await page.evaluate("document.title")).startswith("Cardiology consult")
            assert await page.evaluate("document.getElementById('invite-note').hidden")

            page = pages["participant"]
            await page.wait_for(READY, timeout=JOIN_TIMEOUT)
            assert await page.evaluate(text_of("room-label")) == "Cardiology consult"
            note = await page.evaluate(text_of("invite-note"))
            assert note.startswith("You are invited as participant"), note
            assert await page.evaluate("document.getElementById('password-row').hidden")

            page = pages["viewer"]
            await page.wait_for(READY, timeout=JOIN_TIMEOUT)
            assert await page.evaluate(text_of("room-label")) == "Stroke care, lesson 4"
            note = await page.evaluate(text_of("invite-note"))
            assert note.startswith("You are invited as viewer"), note

            for what in ("expired", "forged", "unknown"):
                page = pages[what]
                await page.wait_for(f"{text_of('join-error')} !== ''", timeout=JOIN_TIMEOUT)
                assert await page.evaluate("document.getElementById('join-button').disabled")
                assert await page.evaluate("mcu.state") == "error"
            assert "expired" in await pages["expired"].evaluate(text_of("join-error"))
            assert "not valid" in await pages["forged"].evaluate(text_of("join-error"))
            assert "does not exist" in await pages["unknown"].evaluate(text_of("join-error"))
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc}\n{await describe(list(pages.values()))}")
