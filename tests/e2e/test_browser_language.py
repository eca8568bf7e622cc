"""End to end: a Chinese browser gets the doctor's pages in Chinese, and the switch sticks.

Chromium is started with `--accept-lang=zh-CN` (what a Chinese Windows or Kylin desktop sends):
the join page of a chair's invitation and the room are in Chinese, the room's Chinese title
shows as typed; the page's switch turns the room to English at once, and a reload stays in
English (remembered in localStorage) until `?lang=zh-CN` forces Chinese again.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.chromium import CHROMIUM_PATH, Chromium, ChromiumError, Page, chromium_available
from tests.e2e.room_page import JOIN_TIMEOUT, click, describe

pytestmark = pytest.mark.skipif(
    not chromium_available(),
    reason=f"no Chromium at {CHROMIUM_PATH} (Debian package `chromium`; CI installs it)",
)

READY = "!!window.mcu && !document.getElementById('join-button').disabled"
TITLE = "心内科远程会诊"


def text_of(element_id: str) -> str:
    return f"document.getElementById({json.dumps(element_id)}).textContent.trim()"


async def text(page: Page, element_id: str) -> str:
    value: str = await page.evaluate(text_of(element_id))
    return value


async def test_a_chinese_browser_gets_chinese_and_the_switch_is_remembered(server: Any) -> None:
    await server.create_room("xnk-1", "county-line-secret", title=TITLE)
    link = server.base_url + await server.invite("xnk-1", role="chair")
    async with Chromium(language="zh-CN") as browser:
        page = await browser.open(link)
        try:
            assert await page.evaluate("navigator.languages[0]") == "zh-CN"
            await page.wait_for(READY, timeout=JOIN_TIMEOUT)
            assert await page.evaluate("document.documentElement.lang") == "zh-CN"
            assert await text(page, "join-button") == "加入"
            assert await text(page, "room-label") == TITLE
            assert (await page.evaluate("document.title")).startswith(TITLE)
            assert (await text(page, "invite-note")).startswith("您受邀以主持人身份加入")
            assert await page.evaluate("document.querySelector('label[for=name]').textContent") == (
                "您的姓名"
            )

            await page.evaluate("document.getElementById('name').value = '王医生'; true")
            await click(page, "#join-button")
            await page.wait_for("window.mcu.state === 'joined'", timeout=JOIN_TIMEOUT)
            assert await text(page, "room-title") == TITLE
            assert await text(page, "leave-button") == "离开"
            assert await text(page, "self-name") == "我\uff08主持人\uff09"  # full-width brackets
            assert await text(page, "mic-button") == "麦克风静音"

            # The switch: everything, including what the code drew, in English at once.
            await click(page, "#lang-switch button[data-lang=en]")
            await page.wait_for("document.documentElement.lang === 'en'")
            assert await text(page, "leave-button") == "Leave"
            assert await text(page, "self-name") == "You (chair)"
            assert await text(page, "mic-button") == "Mute microphone"
            assert await page.evaluate("localStorage.getItem('mcu.lang')") == "en"
            assert await page.evaluate(
                "document.querySelector('#lang-switch [data-lang=en]').ariaPressed"
            ) == ("true")

            # Remembered across a reload, though the browser still prefers Chinese.
            await page.send("Page.reload")
            await page.wait_for(READY, timeout=JOIN_TIMEOUT)
            assert await page.evaluate("document.documentElement.lang") == "en"
            assert await text(page, "join-button") == "Join"
            assert (await text(page, "invite-note")).startswith("You are invited as chair.")
            assert await text(page, "room-label") == TITLE

            # `?lang=zh-CN` forces Chinese over the remembered choice.
            await page.navigate(link + "&lang=zh-CN")
            await page.wait_for(READY, timeout=JOIN_TIMEOUT)
            assert await page.evaluate("document.documentElement.lang") == "zh-CN"
            assert await text(page, "join-button") == "加入"
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc}\n{await describe([page])}")
