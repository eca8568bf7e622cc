"""End to end: the library page (/library) and the room's recording indicator in real Chromium.

The library test uploads a real H.264 MP4 through the staff API (encrypted at rest, the server's
default), signs in on the page with the admin token, searches, and plays it: the `<video>` gets a
share link as its source and must advance past one second, which takes range requests through
the decrypting file server. It also edits, uploads and deletes through the page, and opens a share
link directly. The recording test has the chair start and stop recording from the room page and
the participant see the indicator come and go. Layout screenshots go to /tmp.
"""

from __future__ import annotations

import asyncio
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.e2e.chromium import CHROMIUM_PATH, Chromium, ChromiumError, Page, chromium_available
from tests.e2e.room_page import JOIN_TIMEOUT, click, describe, screenshot, wait_for_media, with_name

pytestmark = pytest.mark.skipif(
    not chromium_available(),
    reason=f"no Chromium at {CHROMIUM_PATH} (Debian package `chromium`; CI installs it)",
)

UI_TIMEOUT = 15.0
PLAY_TIMEOUT = 30.0
LIBRARY_SCREENSHOTS = {
    (1280, 800): "/tmp/mcu-library-1280x800.png",
    (390, 844): "/tmp/mcu-library-390x844.png",
}
LIST_SCREENSHOTS = {
    (1280, 800): "/tmp/mcu-library-list-1280x800.png",
    (390, 844): "/tmp/mcu-library-list-390x844.png",
}
RECORDING_SCREENSHOTS = {
    (1280, 800): "/tmp/mcu-recording-1280x800.png",
    (390, 844): "/tmp/mcu-recording-390x844.png",
}
# A one-page PDF; the server recognises PDFs by their first bytes.
TINY_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)

PLAYING_JS = """(() => {
  const v = document.getElementById('player-video');
  return v.currentTime > 1 && v.readyState >= 2 && v.error === null
    && {currentTime: v.currentTime, readyState: v.readyState, src: v.currentSrc,
        width: v.videoWidth, height: v.videoHeight, duration: v.duration};
})()"""

ROWS_JS = "[...document.querySelectorAll('#results-body tr')].map(r => r.dataset.id)"


def make_mp4(path: Path, seconds: int = 4, fps: int = 25) -> None:
    """`seconds` of 640x360 H.264 (yuv420p, faststart): a white bar moving across grey."""
    width, height = 640, 360
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(fps)}
        for index in range(seconds * fps):
            image = np.full((height, width, 3), 64, dtype=np.uint8)
            x = index * (width - 40) // (seconds * fps)
            image[:, x : x + 40] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


async def upload(server: Any, body: bytes, **query: str) -> dict[str, Any]:
    async with server.http.post(server.base_url + "/api/library", params=query, data=body) as r:
        assert r.status == 201, await r.text()
        item: dict[str, Any] = await r.json()
        return item


async def library_items(server: Any, **query: str) -> dict[str, Any]:
    async with server.http.get(server.base_url + "/api/library", params=query) as r:
        assert r.status == 200, await r.text()
        page: dict[str, Any] = await r.json()
        return page


async def set_value(page: Page, selector: str, value: str) -> None:
    """Types `value` into a form field as a person would (the field's input event fires)."""
    await page.evaluate(
        f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
        f" e.focus(); e.value = {json.dumps(value)};"
        " e.dispatchEvent(new Event('input', {bubbles: true})); })()"
    )


async def set_file(page: Page, selector: str, path: Path) -> None:
    """Picks `path` in the file input `selector` (what the file chooser would do)."""
    document = await page.send("DOM.getDocument", {"depth": 0})
    node = await page.send(
        "DOM.querySelector", {"nodeId": document["root"]["nodeId"], "selector": selector}
    )
    await page.send("DOM.setFileInputFiles", {"nodeId": node["nodeId"], "files": [str(path)]})


async def test_library_page_searches_and_plays_an_encrypted_upload(
    server: Any, tmp_path: Path
) -> None:
    video_path = tmp_path / "lesson.mp4"
    await asyncio.to_thread(make_mp4, video_path)
    video = video_path.read_bytes()
    lesson = await upload(server, video, title="Cardiology lesson", department="Cardiology")
    other = await upload(server, video, title="Dermatology rounds", department="Dermatology")
    assert lesson["files"][0]["encrypted"] is True  # the server's default for uploads
    assert lesson["duration_s"] == pytest.approx(4.0, abs=0.2)
    pdf_path = tmp_path / "ecg-basics.pdf"
    pdf_path.write_bytes(TINY_PDF)

    async with Chromium() as browser:
        pages: list[Page] = []
        try:
            page = await browser.open(server.base_url + "/library")
            pages.append(page)
            # The form is enabled once the page's script runs (before that it must not submit).
            await page.wait_for(
                "document.getElementById('token-submit')?.disabled === false", timeout=UI_TIMEOUT
            )
            signed_out = await page.evaluate("document.getElementById('library').hidden")

            # A wrong token is refused on the form; the right one opens the list, newest first.
            await set_value(page, "#token", "not-the-token-at-all")
            await click(page, "#token-submit")
            await page.wait_for(
                "document.getElementById('token-error').textContent.includes('refused')",
                timeout=UI_TIMEOUT,
            )
            await set_value(page, "#token", server.admin_token)
            await click(page, "#token-submit")
            await page.wait_for("document.body.dataset.signedIn === 'true'", timeout=UI_TIMEOUT)
            all_rows = await page.wait_for(f"{ROWS_JS}.length === 2 && {ROWS_JS}", UI_TIMEOUT)
            stored = await page.evaluate("sessionStorage.getItem('mcu.libraryToken')")
            for (width, height), path in LIST_SCREENSHOTS.items():
                await screenshot(page, path, width, height)

            # Search for the cardiology lesson and play it.
            await set_value(page, "#q", "Cardiology")
            await click(page, "#search-button")
            found = await page.wait_for(f"{ROWS_JS}.length === 1 && {ROWS_JS}", UI_TIMEOUT)
            row_text = await page.evaluate("document.querySelector('#results-body tr').innerText")
            await click(page, f'tr[data-id="{lesson["id"]}"] button.play')
            playing = await page.wait_for(PLAYING_JS, timeout=PLAY_TIMEOUT, interval=0.25)
            for (width, height), path in LIBRARY_SCREENSHOTS.items():
                await screenshot(page, path, width, height)

            # Edit the lecturer and tags through the dialog.
            await click(page, f'tr[data-id="{lesson["id"]}"] button.edit')
            await page.wait_for("document.getElementById('edit-dialog').open", UI_TIMEOUT)
            await set_value(page, "#edit-lecturer", "Dr Ávila")
            await set_value(page, "#edit-tags", "ecg, basics")
            await click(page, "#edit-save")
            await page.wait_for("!document.getElementById('edit-dialog').open", UI_TIMEOUT)

            # Upload a PDF through the form; it appears in the list.
            await page.evaluate("document.getElementById('upload').open = true")
            await set_file(page, "#upload-file", pdf_path)
            await set_value(page, "#upload-title", "ECG basics slides")
            await set_value(page, "#upload-department", "Cardiology")
            await set_value(page, "#q", "")
            await click(page, "#upload-submit")
            await page.wait_for(f"{ROWS_JS}.length === 3", UI_TIMEOUT)

            # Delete the dermatology item (confirming the question).
            await page.evaluate("window.confirm = () => true")
            await click(page, f'tr[data-id="{other["id"]}"] button.delete')
            await page.wait_for(f"!{ROWS_JS}.includes({json.dumps(other['id'])})", UI_TIMEOUT)

            # A share link opened directly plays in the browser's own player.
            share = await page.evaluate(
                "document.getElementById('player-video').currentSrc"
                ".replace(/\\/files\\/video\\.mp4/, '/play')"
            )
            direct = await browser.open(share)
            pages.append(direct)
            direct_state = await direct.wait_for(
                "(() => { const v = document.querySelector('video');"
                " return v && v.currentTime > 1 && v.error === null"
                " && {type: document.contentType, time: v.currentTime}; })()",
                timeout=PLAY_TIMEOUT,
            )
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            consoles = "\n".join(line for p in pages for line in p.console[-20:])
            pytest.fail(f"{exc}\n{consoles}\n{server.log()[-3000:]}")

    assert signed_out is True
    assert stored == server.admin_token
    assert all_rows == [other["id"], lesson["id"]]  # newest first
    assert found == [lesson["id"]]
    assert "Cardiology lesson" in row_text and "0:04" in row_text
    # Playback went through a share link (a <video> cannot send the admin header).
    assert f"/library/{lesson['id']}/files/video.mp4?token=" in playing["src"]
    assert (playing["width"], playing["height"]) == (640, 360)
    assert playing["duration"] == pytest.approx(4.0, abs=0.2)
    assert direct_state["type"] == "video/mp4"

    edited = await server.get_json(f"/api/library/{lesson['id']}")
    assert edited["lecturer"] == "Dr Ávila"
    assert edited["tags"] == ["ecg", "basics"]
    slides = await library_items(server, q="ECG basics slides")
    assert [item["title"] for item in slides["items"]] == ["ECG basics slides"]
    assert slides["items"][0]["department"] == "Cardiology"
    assert slides["items"][0]["files"][0]["media_type"] == "application/pdf"
    status, _ = await server.download(f"/api/library/{other['id']}")
    assert status == 404


async def test_recording_indicator_follows_the_chair(server: Any) -> None:
    """The chair starts and stops recording; the participant sees the indicator come and go."""
    room = "e2e-recorded"
    await server.create_room(room, "e2e-secret-pass", title="Recorded consultation")
    urls = [
        with_name(server.base_url, await server.invite(room, role="chair"), "Dr Chair"),
        with_name(server.base_url, await server.invite(room), "Patient"),
    ]
    indicator_shown = (
        "(() => { const e = document.getElementById('recording-indicator');"
        " return !e.hidden && e.getBoundingClientRect().width > 0; })()"
    )

    async with Chromium() as browser:
        pages: list[Page] = []
        try:
            for url in urls:
                pages.append(await browser.open(url))
            for page in pages:
                await page.wait_for("window.mcu?.state === 'joined'", timeout=JOIN_TIMEOUT)
            chair, patient = pages
            await asyncio.gather(*(wait_for_media(page) for page in pages))
            before = await patient.evaluate("window.mcu.recording")
            patient_button = await patient.evaluate(
                "document.getElementById('record-button').hidden"
            )
            chair_label = await chair.evaluate(
                "document.getElementById('record-button').textContent"
            )

            await click(chair, "#record-button")
            during = await patient.wait_for(
                f"window.mcu.recording.active === true && {indicator_shown}"
                " && window.mcu.recording",
                timeout=UI_TIMEOUT,
            )
            await chair.wait_for(indicator_shown, timeout=UI_TIMEOUT)
            chair_stop_label = await chair.wait_for(
                "(() => { const t = document.getElementById('record-button').textContent;"
                " return t === 'Stop recording' && t; })()",
                timeout=UI_TIMEOUT,
            )
            for (width, height), path in RECORDING_SCREENSHOTS.items():
                await screenshot(patient, path, width, height)
            await screenshot(chair, "/tmp/mcu-recording-chair-390x844.png", 390, 844)
            await asyncio.sleep(2.0)  # a little media in the files

            await click(chair, "#record-button")
            after = await patient.wait_for(
                f"window.mcu.recording.active === false && !({indicator_shown})"
                " && window.mcu.recording",
                timeout=UI_TIMEOUT,
            )
            await chair.wait_for(
                "document.getElementById('record-button').textContent === 'Record'",
                timeout=UI_TIMEOUT,
            )
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc}\n{await describe(pages)}")

    assert before == {"active": False, "recordingId": None, "startedAt": None, "error": None}
    assert patient_button is True  # only the chair records
    assert chair_label == "Record"
    assert chair_stop_label == "Stop recording"
    assert during["recordingId"] and during["startedAt"]
    assert after["active"] is False and after["error"] is None

    page = await library_items(server, q="")
    recordings = [item for item in page["items"] if item["kind"] == "recording"]
    assert [item["id"] for item in recordings] == [during["recordingId"]]
    recording = recordings[0]
    assert recording["room_id"] == room
    assert recording["status"] == "complete"
    assert recording["files"], recording  # one file per recorded track
