"""End to end: the content channel (docs/protocol.md, "Content") between real Chromium tabs.

A presenter shares a moving 1280x720 canvas through the client's own "Share screen" path
(`window.mcu.shareCanvasForTest()`; a headless browser has no screen to pick), or uploads a
document through its "Share file" path (`window.mcu.shareFileForTest()`) for the server to render
as slides. The viewers must decode it as a second video next to the presenter's camera, at its
real size, and the floor must follow who presents.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from PIL import Image, ImageDraw

from tests.e2e.chromium import CHROMIUM_PATH, Chromium, ChromiumError, Page, chromium_available
from tests.e2e.room_page import JOIN_TIMEOUT, Stats, describe, wait_for_stats, with_name

pytestmark = pytest.mark.skipif(
    not chromium_available(),
    reason=f"no Chromium at {CHROMIUM_PATH} (Debian package `chromium`; CI installs it)",
)

CONTENT_TIMEOUT = 45.0
STATE_TIMEOUT = 20.0
# The canvas is 1280x720; the client's camera asks for 640x360.
CONTENT_WIDTH = 1280


def inbound_video(stats: Stats, source: str) -> dict[str, Any] | None:
    """The page's inbound video of `source` ("camera" or "content") that decoded most, or None."""
    videos = [
        s for s in stats.get("inbound") or [] if s["kind"] == "video" and s["source"] == source
    ]
    return max(videos, key=lambda s: s["framesDecoded"], default=None)


def decodes(stats: Stats, source: str, min_width: int = 0) -> bool:
    """Whether an inbound video of `source` decodes frames at least `min_width` wide."""
    video = inbound_video(stats, source)
    return (
        video is not None and video["framesDecoded"] > 0 and (video["frameWidth"] or 0) >= min_width
    )


def camera_and_full_size_content(stats: Stats) -> bool:
    return decodes(stats, "camera") and decodes(stats, "content", CONTENT_WIDTH)


def pattern_png(width: int = 1600, height: int = 1000) -> bytes:
    """A high-contrast PNG (a "scanned report"): a checkerboard, fine lines and a title."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for y in range(0, height, 50):
        for x in range(0, width, 50):
            if (x + y) // 50 % 2 == 0:
                draw.rectangle((x, y, x + 49, y + 49), fill="black")
    for x in range(0, width, 4):
        draw.line((x, height - 80, x, height), fill="black")
    draw.rectangle((40, 40, 700, 140), fill="navy")
    draw.text((60, 70), "Echocardiogram report, page 1", fill="white")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def pages_pdf(pages: int = 3) -> bytes:
    """A PDF of `pages` pages, each a picture saying its number."""
    images = []
    for number in range(1, pages + 1):
        image = Image.new("RGB", (1240, 1754), "white")  # A4 at 150 dpi
        draw = ImageDraw.Draw(image)
        draw.rectangle((100, 100, 1140, 400), fill="black")
        draw.text((150, 200), f"Discharge letter, page {number} of {pages}", fill="white")
        images.append(image)
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=150)
    return out.getvalue()


async def join(
    browser: Chromium, server: Any, room: str, people: list[tuple[str, str]]
) -> list[Page]:
    """Open one tab per (name, role) through invite links; return once every tab has joined."""
    await server.create_room(room, "content-secret", title="Content")
    pages = []
    for name, role in people:
        link = await server.invite(room, role=role)
        pages.append(await browser.open(with_name(server.base_url, link, name)))
    for page in pages:
        await page.wait_for("window.mcu?.state === 'joined'", timeout=JOIN_TIMEOUT)
    return pages


async def share_file(page: Page, data: bytes, name: str) -> Any:
    """Upload through the page's own "Share file" path and wait until the slides are shown."""
    encoded = base64.b64encode(data).decode("ascii")
    return await page.evaluate(
        f"window.mcu.shareFileForTest({json.dumps(encoded)}, {json.dumps(name)})",
        timeout=CONTENT_TIMEOUT,
    )


async def press_key(page: Page, key: str, code: int) -> None:
    """A real key press (CDP input), as the presenter's keyboard would send it."""
    for event in ("keyDown", "keyUp"):
        await page.send(
            "Input.dispatchKeyEvent",
            {"type": event, "key": key, "code": key, "windowsVirtualKeyCode": code},
        )


async def content_ended(page: Page, track_id: str) -> None:
    """Wait until the page was told the content track ended and no longer carries any content."""
    await page.wait_for(
        f"window.mcu.messages.some(m => m.type === 'track_unpublished'"
        f" && m.track_id === {json.dumps(track_id)})"
        " && !window.mcu.received.some(r => r.source === 'content')"
        " && window.mcu.floor.holder === null && !window.mcu.contentView.shown",
        timeout=STATE_TIMEOUT,
    )


async def test_shared_screen_reaches_the_viewer_at_full_size_beside_the_camera(
    server: Any,
) -> None:
    """A canvas shared through the "Share screen" path is a second video at its real size.

    The presenter holds the floor while it shares; stopping ends the viewer's content track and
    frees the floor; sharing again works (the client reuses its inactive content section). The
    server forwards the content, it never decodes it.
    """
    async with Chromium() as browser:
        pages: list[Page] = []
        try:
            pages = await join(
                browser,
                server,
                "e2e-content-screen",
                [("Dr Ada Presenter", "participant"), ("Dr Bo Viewer", "participant")],
            )
            presenter, viewer = pages
            presenter_id = await presenter.evaluate("window.mcu.participantId")
            await presenter.evaluate(
                "window.mcu.shareCanvasForTest().then(() => true)", timeout=CONTENT_TIMEOUT
            )
            await presenter.wait_for(
                "window.mcu.floor.holder === window.mcu.participantId"
                " && window.mcu.floor.mode === 'stream' && window.mcu.presenting === 'stream'",
                timeout=STATE_TIMEOUT,
            )
            stats = await wait_for_stats(
                viewer,
                camera_and_full_size_content,
                f"camera and {CONTENT_WIDTH}-wide content decoded",
                CONTENT_TIMEOUT,
            )
            viewer_floor = await viewer.evaluate("window.mcu.floor")
            viewer_view = await viewer.evaluate("window.mcu.contentView")
            shown = await viewer.evaluate(
                "(() => { const v = document.querySelector('#content video');"
                " return {fit: getComputedStyle(v).objectFit, width: v.videoWidth,"
                " live: v.srcObject?.getVideoTracks()[0]?.readyState === 'live',"
                " stripped: document.getElementById('stage').classList.contains('has-content')};"
                " })()"
            )
            presenter_outbound = (await presenter.evaluate("window.mcu.stats()"))["outbound"]

            await presenter.evaluate("window.mcu.stopSharing().then(() => true)")
            content = inbound_video(stats, "content")
            assert content is not None
            await content_ended(viewer, content["trackId"])
            await presenter.wait_for(
                "window.mcu.floor.holder === null && window.mcu.presenting === null",
                timeout=STATE_TIMEOUT,
            )

            await presenter.evaluate(
                "window.mcu.shareCanvasForTest().then(() => true)", timeout=CONTENT_TIMEOUT
            )
            again = await wait_for_stats(
                viewer,
                lambda s: any(
                    v["source"] == "content"
                    and v["trackId"] != content["trackId"]
                    and v["framesDecoded"] > 0
                    and (v["frameWidth"] or 0) >= CONTENT_WIDTH
                    for v in s["inbound"]
                ),
                "the second share decoded",
                CONTENT_TIMEOUT,
            )
            presenter_sections = await presenter.evaluate(
                "window.mcu.stats().then(s => s.outbound.filter(o => o.kind === 'video').length)"
            )
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc}\n{await describe(pages)}")

    camera = inbound_video(stats, "camera")
    assert camera is not None and content is not None
    # Two videos from the same person, told apart by source; the content is not scaled down.
    assert camera["participantId"] == content["participantId"] == presenter_id
    assert content["frameWidth"] >= CONTENT_WIDTH > camera["frameWidth"], stats
    assert viewer_floor == {"holder": presenter_id, "mode": "stream", "queuePosition": None}
    assert viewer_view["shown"] and viewer_view["caption"] == "Dr Ada Presenter is presenting"
    assert shown == {
        "fit": "contain",
        "width": content["frameWidth"],
        "live": True,
        "stripped": True,
    }
    assert any(s["source"] == "content" and s["packetsSent"] > 0 for s in presenter_outbound)
    assert inbound_video(again, "content") is not None
    assert presenter_sections == 2  # camera and content: the content section was reused
    assert await server.decoded_frames() == 0


async def test_uploaded_png_is_shown_to_the_viewer_as_slides(server: Any) -> None:
    """A PNG uploaded through "Share file" is rendered by the server into a content track.

    An upload the server refuses (415: not an image) is reported on the page and changes nothing.
    """
    async with Chromium() as browser:
        pages: list[Page] = []
        try:
            pages = await join(
                browser,
                server,
                "e2e-content-slides",
                [("Dr Cy Radiologist", "participant"), ("Dr Di Viewer", "participant")],
            )
            presenter, viewer = pages
            presenter_id = await presenter.evaluate("window.mcu.participantId")

            refused = None
            try:
                await share_file(presenter, b"these are my notes, not an image", "notes.png")
            except ChromiumError as exc:
                refused = str(exc)
            refusal = await presenter.evaluate(
                "({error: window.mcu.lastError, floor: window.mcu.floor,"
                " shown: !document.getElementById('share-error').hidden,"
                " text: document.getElementById('share-error-text').textContent})"
            )

            uploaded = await share_file(presenter, pattern_png(), "echo-report.png")
            await presenter.wait_for(
                "window.mcu.slides.presenter === window.mcu.participantId"
                " && window.mcu.floor.mode === 'slides' && window.mcu.presenting === 'slides'",
                timeout=STATE_TIMEOUT,
            )
            stats = await wait_for_stats(
                viewer,
                lambda s: decodes(s, "camera") and decodes(s, "content", CONTENT_WIDTH),
                "camera and slides decoded",
                CONTENT_TIMEOUT,
            )
            viewer_slides = await viewer.evaluate("window.mcu.slides")
            viewer_view = await viewer.evaluate("window.mcu.contentView")

            await presenter.evaluate("window.mcu.stopSharing().then(() => true)")
            content = inbound_video(stats, "content")
            assert content is not None
            await content_ended(viewer, content["trackId"])
            stopped_slides = await viewer.evaluate("window.mcu.slides")
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc}\n{await describe(pages)}")

    assert refused is not None and "cannot be shown" in refused
    assert refusal["error"]["status"] == 415, refusal
    assert refusal["shown"] and "PNG or JPEG image, a PDF or a DICOM file" in refusal["text"]
    assert refusal["floor"]["holder"] is None
    assert uploaded["pages"] == 1 and uploaded["kind"] == "png", uploaded
    assert content["participantId"] == presenter_id
    assert viewer_slides == {
        "presenter": presenter_id,
        "documentId": uploaded["documentId"],
        "page": 1,
        "pages": 1,
        "trackId": content["trackId"],
    }
    assert viewer_view == {
        "shown": True,
        "caption": "Dr Cy Radiologist is presenting",
        "counter": "Page 1 of 1",
    }
    assert stopped_slides["presenter"] is None


async def test_presenter_pages_through_a_pdf_with_buttons_and_arrow_keys(server: Any) -> None:
    """Next/previous and the arrow keys turn the pages; every viewer's counter follows.

    Then the presenter stops the slides and shares a screen straight away: the new share must
    not be mistaken for the old one (the floor is released before it is asked for again).
    """
    async with Chromium() as browser:
        pages: list[Page] = []
        try:
            pages = await join(
                browser,
                server,
                "e2e-content-pdf",
                [("Dr Eve Presenter", "participant"), ("Dr Fay Viewer", "participant")],
            )
            presenter, viewer = pages
            uploaded = await share_file(presenter, pages_pdf(3), "discharge.pdf")
            await viewer.wait_for(
                "window.mcu.contentView.counter === 'Page 1 of 3'", timeout=CONTENT_TIMEOUT
            )
            await presenter.evaluate("document.querySelector('#content .slide-next').click(); true")
            await viewer.wait_for("window.mcu.slides.page === 2", timeout=STATE_TIMEOUT)
            await press_key(presenter, "ArrowRight", 39)
            await viewer.wait_for(
                "window.mcu.contentView.counter === 'Page 3 of 3'", timeout=STATE_TIMEOUT
            )
            last_page_buttons = await presenter.evaluate(
                "({next: document.querySelector('#content .slide-next').disabled,"
                " previous: document.querySelector('#content .slide-previous').disabled})"
            )
            await press_key(presenter, "ArrowLeft", 37)
            await viewer.wait_for("window.mcu.slides.page === 2", timeout=STATE_TIMEOUT)
            # The viewer has no page buttons: paging is the presenter's.
            viewer_buttons = await viewer.evaluate(
                "document.querySelector('#content .slide-next').hidden"
            )
            slides = await wait_for_stats(
                viewer, lambda s: decodes(s, "content"), "slides decoded", CONTENT_TIMEOUT
            )
            slides_track = (inbound_video(slides, "content") or {}).get("trackId")

            await presenter.evaluate(
                "window.mcu.stopSharing().then(() => window.mcu.shareCanvasForTest())"
                ".then(() => true)",
                timeout=CONTENT_TIMEOUT,
            )
            await viewer.wait_for(
                "window.mcu.floor.mode === 'stream' && window.mcu.slides.presenter === null"
                " && window.mcu.contentView.counter === ''",
                timeout=STATE_TIMEOUT,
            )
            await wait_for_stats(
                viewer,
                lambda s: (
                    decodes(s, "content", CONTENT_WIDTH)
                    and inbound_video(s, "content")["trackId"] != slides_track
                ),
                "the shared screen decoded after the slides",
                CONTENT_TIMEOUT,
            )
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc}\n{await describe(pages)}")

    assert uploaded["pages"] == 3 and uploaded["kind"] == "pdf", uploaded
    assert last_page_buttons == {"next": True, "previous": False}
    assert viewer_buttons is True


async def test_floor_queue_and_chair_take_over(server: Any) -> None:
    """A second presenter waits in line; a chair takes over; the line moves on when it ends.

    Ann shares; Ben asks too and waits (position 1); the chair shares and pre-empts Ann, whose
    content stops and who is told why; when the chair stops, Ben gets the floor and his share
    starts by itself.
    """
    async with Chromium() as browser:
        pages: list[Page] = []
        try:
            pages = await join(
                browser,
                server,
                "e2e-content-floor",
                [("Ann", "participant"), ("Ben", "participant"), ("Dr Chair", "chair")],
            )
            ann, ben, chair = pages
            ann_id, ben_id, chair_id = [
                await page.evaluate("window.mcu.participantId") for page in pages
            ]
            await ann.evaluate(
                "window.mcu.shareCanvasForTest().then(() => true)", timeout=CONTENT_TIMEOUT
            )
            # Not awaited: Ben's share completes only when the floor comes to him.
            await ben.evaluate("window.mcu.shareCanvasForTest(); true")
            await ben.wait_for("window.mcu.floor.queuePosition === 1", timeout=STATE_TIMEOUT)
            ben_status = await ben.evaluate("document.getElementById('floor-status').textContent")
            chair_button = await chair.evaluate(
                "document.getElementById('present-button').textContent"
            )

            await chair.evaluate(
                "window.mcu.shareCanvasForTest().then(() => true)", timeout=CONTENT_TIMEOUT
            )
            await ann.wait_for(
                f"window.mcu.floor.holder === {json.dumps(chair_id)}"
                " && window.mcu.presenting === null"
                " && !document.getElementById('share-error').hidden",
                timeout=STATE_TIMEOUT,
            )
            ann_told = await ann.evaluate("document.getElementById('share-error-text').textContent")
            await wait_for_stats(
                ann,
                lambda s: any(
                    v["participantId"] == chair_id and v["framesDecoded"] > 0
                    for v in s["inbound"]
                    if v["source"] == "content"
                ),
                "the chair's content decoded",
                CONTENT_TIMEOUT,
            )
            ben_still_waiting = await ben.evaluate("window.mcu.floor.queuePosition")

            await chair.evaluate("window.mcu.stopSharing().then(() => true)")
            await ben.wait_for(
                f"window.mcu.floor.holder === {json.dumps(ben_id)}"
                " && window.mcu.presenting === 'stream'",
                timeout=STATE_TIMEOUT,
            )
            await wait_for_stats(
                ann,
                lambda s: any(
                    v["participantId"] == ben_id and v["framesDecoded"] > 0
                    for v in s["inbound"]
                    if v["source"] == "content"
                ),
                "Ben's content decoded",
                CONTENT_TIMEOUT,
            )
            ann_caption = await ann.evaluate("window.mcu.contentView.caption")
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc}\n{await describe(pages)}")

    assert ben_status == "Waiting for the floor (position 1)."
    assert chair_button == "Take over"
    assert ann_told == "Dr Chair took over the presentation. Your sharing has stopped."
    assert ben_still_waiting == 1
    assert ann_caption == "Ben is presenting"
    assert ann_id not in (ben_id, chair_id)
