"""Driving the browser client's room page (signaling/web/) in a Chromium tab, for e2e tests.

Everything here reads the page through `window.mcu`, the client's test and diagnostics handle.
Every wait is bounded and fails fast when the page's session has ended.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.e2e.chromium import ChromiumError, Page

JOIN_TIMEOUT = 40.0
"""Seconds for a page to load and join: generous, since a browser started on a machine busy with
other work can take most of 20 s before its first frame (a bound, not a measurement)."""
MEDIA_TIMEOUT = 30.0
POLL_INTERVAL = 0.5

Stats = dict[str, Any]


def with_name(base_url: str, link: str, name: str, codec: str = "vp8") -> str:
    """The invite link (`/r/<room>?invite=<token>`) as a "click to join" URL."""
    url = link if link.startswith(("http://", "https://")) else base_url + link
    separator = "&" if "?" in url else "?"
    url = f"{url}{separator}name={quote(name)}"
    return url if codec == "vp8" else f"{url}&codec={codec}"


def received_media(stats: Stats) -> bool:
    """Whether a page decodes remote video and receives remote audio."""
    inbound = stats.get("inbound") or []
    video = any(s["kind"] == "video" and s["framesDecoded"] > 0 for s in inbound)
    audio = any(s["kind"] == "audio" and s["packetsReceived"] > 0 for s in inbound)
    return video and audio


def sends_video(stats: Stats) -> bool:
    """Whether the page's own video has gone out (its publish connection carries packets)."""
    return any(s["kind"] == "video" and s["packetsSent"] > 0 for s in stats.get("outbound") or [])


async def wait_for_stats(
    page: Page, condition: Callable[[Stats], bool], what: str, timeout: float = MEDIA_TIMEOUT
) -> Stats:
    """Poll `window.mcu.stats()` until `condition(stats)`; fail fast if the session ended."""
    deadline = time.monotonic() + timeout
    while True:
        stats: Stats = await page.evaluate("window.mcu.stats()")
        if condition(stats):
            return stats
        if stats.get("state") in ("error", "left"):
            raise AssertionError(f"session ended while waiting for {what}: {stats}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no {what} in {timeout} s: {stats}")
        await asyncio.sleep(POLL_INTERVAL)


async def wait_for_media(page: Page, timeout: float = MEDIA_TIMEOUT) -> Stats:
    """Wait until remote video is decoded, remote audio received and the page's video sent.

    Both directions: the first remote frame can be decoded before the page's own publish
    connection has sent a packet (seen in about 1 run in 7).
    """
    return await wait_for_stats(
        page,
        lambda stats: received_media(stats) and sends_video(stats),
        "remote video decoded / audio received / own video sent",
        timeout,
    )


async def describe(pages: list[Page]) -> str:
    """Everything the pages can tell about themselves, for a failure message."""
    heads: list[str] = []
    lines = []
    for index, page in enumerate(pages):
        try:
            summary = await page.evaluate(
                "(async () => ({state: window.mcu?.state, lastError: window.mcu?.lastError,"
                " participantId: window.mcu?.participantId, href: location.href,"
                " floor: window.mcu?.floor,"
                " slides: window.mcu?.slides, presenting: window.mcu?.presenting,"
                " received: window.mcu?.received,"
                " messages: (window.mcu?.messages ?? []).slice(-12),"
                " stats: window.mcu ? await window.mcu.stats() : null}))()",
                timeout=5.0,
            )
        except (ChromiumError, TimeoutError) as exc:
            summary = {"unavailable": str(exc)}
        lines.append(f"page {index}: {json.dumps(summary)}")
        lines.extend(f"  {entry}" for entry in page.console[-20:])
        # One short line per page first: a CI log that keeps only part of the output keeps these.
        heads.append(
            f"page {index}: state={summary.get('state')!r}"
            f" lastError={json.dumps(summary.get('lastError'))}"
            f" unavailable={summary.get('unavailable')!r}"
        )
    return "\n".join([*heads, *lines])


async def click(page: Page, selector: str) -> None:
    """A real mouse click (CDP input) at the middle of the element `selector`."""
    box = await page.evaluate(
        f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
        " if (!e) return null; e.scrollIntoView({block: 'nearest'});"
        " const r = e.getBoundingClientRect();"
        " return r.width > 0 && r.height > 0 ? {x: r.x + r.width / 2, y: r.y + r.height / 2}"
        " : null; })()"
    )
    if box is None:
        raise AssertionError(f"nothing visible to click at {selector!r}")
    point = {"x": box["x"], "y": box["y"]}
    await page.send("Input.dispatchMouseEvent", {"type": "mouseMoved", **point})
    for event in ("mousePressed", "mouseReleased"):
        await page.send(
            "Input.dispatchMouseEvent", {"type": event, "button": "left", "clickCount": 1, **point}
        )


async def screenshot(page: Page, path: str, width: int, height: int) -> None:
    """Lay the page out at `width`x`height` CSS pixels (a phone below 600) and save a PNG."""
    await page.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )
    await asyncio.sleep(0.5)  # layout, and a frame or two of video at the new size
    shot = await page.send("Page.captureScreenshot", {"format": "png"})
    await asyncio.to_thread(Path(path).write_bytes, base64.b64decode(shot["data"]))


def decodes_video_from(stats: Stats, participant_id: str) -> bool:
    """Whether the page decodes video that one participant sends (any receiving connection)."""
    return any(
        s["kind"] == "video" and s["framesDecoded"] > 0 and s["participantId"] == participant_id
        for s in stats.get("inbound") or []
    )


async def join_with_password(page: Page, password: str, name: str | None = None) -> None:
    """Fill in the join form (the name too, if given) and submit it, as a person would."""
    await page.wait_for("document.getElementById('join-form') !== null && !!window.mcu")
    fill_name = (
        f"document.getElementById('name').value = {json.dumps(name)};" if name is not None else ""
    )
    await page.evaluate(
        f"{fill_name} document.getElementById('password').value = {json.dumps(password)};"
        " document.getElementById('join-form').requestSubmit(); true"
    )
