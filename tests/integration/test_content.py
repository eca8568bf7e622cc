"""The content channel: floor control, shared content tracks, and server-rendered slides."""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
from PIL import Image

from mcu.slides.slideschedule import REFRESH_INTERVAL
from tests.support.documents import dicom
from tests.support.room_client import (
    ColourTrack,
    DecodedPicture,
    RoomClient,
    ToneTrack,
    joined_client,
)
from tests.support.server import ServerProcess


def _token(client: RoomClient) -> str:
    joined = next(m for m in client.messages if m["type"] == "joined")
    token: str = joined["session_token"]
    return token


async def _upload(server: ServerProcess, client: RoomClient, data: bytes) -> tuple[int, Any]:
    async with server.http.post(
        server.base_url + "/rooms/cardio-1/documents",
        data=data,
        headers={"Authorization": f"Bearer {_token(client)}"},
    ) as r:
        return r.status, await r.json()


def _floor_events(client: RoomClient) -> list[tuple[Any, Any, Any]]:
    return [(m["holder"], m["mode"], m["reason"]) for m in client.messages if m["type"] == "floor"]


def _quadrants(width: int, height: int) -> np.ndarray:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[: height // 2, : width // 2] = (220, 30, 30)
    image[: height // 2, width // 2 :] = (30, 220, 30)
    image[height // 2 :, : width // 2] = (30, 30, 220)
    image[height // 2 :, width // 2 :] = (230, 230, 230)
    return image


def _encode(image: np.ndarray, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format=fmt, **options)
    return out.getvalue()


async def test_floor_handover_preemption_and_release_on_disconnect(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    chair_link = await server.invite("cardio-1", role="chair")
    county = await joined_client(server, "County doctor", password="correct horse")
    specialist = await joined_client(server, "Specialist", password="correct horse")
    chair = await joined_client(server, "Chair", invite=chair_link.split("invite=", 1)[1])
    clients = [county, specialist, chair]
    try:
        await county.publish({"camera": ColourTrack((90, 90, 90))})
        # Publishing content takes the free floor implicitly; everyone sees it as content.
        await county.publish({"content": ColourTrack((250, 250, 250), width=640, height=360)})
        cid = county.participant_id
        await specialist.wait_until(lambda: (cid, "stream", "granted") in _floor_events(specialist))
        content = await specialist.wait_for(
            lambda m: m["type"] == "track_published" and m["track"]["source"] == "content"
        )
        track_id = content["track"]["id"]
        await specialist.wait_until(
            lambda: track_id in specialist.received and specialist.received[track_id].frames > 2
        )
        assert specialist.received[track_id].source == "content"

        # The specialist cannot publish content meanwhile; a request queues.
        reply = await specialist.publish({"content": ColourTrack((0, 0, 0))})
        assert reply["code"] == "floor_busy"
        await specialist.send({"type": "floor", "action": "request"})
        queued = await specialist.wait_for(lambda m: m["type"] == "floor_queued")
        assert queued["position"] == 1

        # The chair pre-empts: the county doctor's content ends for everyone.
        await chair.send({"type": "floor", "action": "request"})
        await chair.wait_until(
            lambda: (chair.participant_id, None, "preempted") in _floor_events(chair)
        )
        await chair.wait_for(
            lambda m: m["type"] == "track_unpublished" and m["track_id"] == track_id
        )

        # The chair releases: the specialist, next in line, gets the floor.
        await chair.send({"type": "floor", "action": "release"})
        sid = specialist.participant_id
        await specialist.wait_until(lambda: (sid, None, "granted") in _floor_events(specialist))

        # The holder disconnects: the floor is released for everyone.
        await specialist.close()
        await county.wait_until(lambda: (None, None, "left") in _floor_events(county))
    finally:
        for client in clients:
            await client.close()


async def test_uploaded_documents_reach_subscribers_as_content(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    presenter = await joined_client(server, "Lecturer", password="correct horse")
    viewer = await joined_client(server, "Viewer", password="correct horse")
    try:
        source = _quadrants(800, 600)
        documents = {
            "png": _encode(source, "PNG"),
            "jpeg": _encode(source, "JPEG", quality=95),
            "pdf": _encode(
                source, "PDF", save_all=True, append_images=[Image.fromarray(255 - source)]
            ),
        }
        ids = {}
        for kind, data in documents.items():
            status, body = await _upload(server, presenter, data)
            assert status == 201, body
            assert body["kind"] == kind
            ids[kind] = body
        assert ids["pdf"]["pages"] == 2 and (ids["png"]["width"], ids["png"]["height"]) == (
            800,
            600,
        )

        await presenter.send(
            {
                "type": "slides",
                "action": "show",
                "document_id": ids["png"]["document_id"],
                "page": 1,
            }
        )
        slides = await viewer.wait_for(lambda m: m["type"] == "slides" and m.get("presenter"))
        track_id = slides["track_id"]
        await viewer.wait_until(
            lambda: track_id in viewer.received and viewer.received[track_id].frames > 0, timeout=15
        )
        frame = viewer.received[track_id].last_frame.to_ndarray(format="rgb24")
        assert frame.shape == (1080, 1920, 3)
        # 800x600 fits 1440x1080 centred: letterbox bars left and right, quadrants inside.
        assert frame[540, 100].max() < 30
        for (y, x), colour in {
            (270, 600): (220, 30, 30),
            (270, 1300): (30, 220, 30),
            (810, 600): (30, 30, 220),
            (810, 1300): (230, 230, 230),
        }.items():
            assert np.abs(frame[y, x].astype(int) - colour).max() < 40, (y, x, frame[y, x])

        # Paging through the PDF: page 2 is the inverted picture.
        await presenter.send(
            {
                "type": "slides",
                "action": "show",
                "document_id": ids["pdf"]["document_id"],
                "page": 2,
            }
        )
        await viewer.wait_for(lambda m: m["type"] == "slides" and m.get("page") == 2)

        def inverted() -> bool:
            last = viewer.received[track_id].last_frame
            return last is not None and last.to_ndarray(format="rgb24")[270, 600, 1] > 150

        await viewer.wait_until(inverted, timeout=10)

        # A late joiner gets the current page without waiting for a refresh cycle.
        started = time.monotonic()
        late = await joined_client(server, "Late", password="correct horse")
        joined = next(m for m in late.messages if m["type"] == "joined")
        assert joined["slides"]["page"] == 2 and joined["floor"]["mode"] == "slides"
        await late.wait_until(
            lambda: track_id in late.received and late.received[track_id].frames > 0, timeout=10
        )
        print(f"late joiner decoded the slide {time.monotonic() - started:.2f} s after joining")
        await late.close()

        # Stop: the content track ends and the floor is free.
        await presenter.send({"type": "slides", "action": "stop"})
        await viewer.wait_for(
            lambda m: m["type"] == "track_unpublished" and m["track_id"] == track_id
        )
        await viewer.wait_until(lambda: (None, None, "released") in _floor_events(viewer))
        assert await server.decoded_frames() == 0  # rendering encodes; nothing is decoded
    finally:
        await presenter.close()
        await viewer.close()


def _shows(picture: DecodedPicture, colour: tuple[int, int, int]) -> bool:
    """Whether the middle of the decoded picture has ``colour``."""
    middle = picture.frame.to_ndarray(format="rgb24")[540, 1500].astype(int)
    return bool(np.abs(middle - colour).max() < 40)


async def test_a_turned_page_is_decoded_without_waiting_for_the_refresh(
    server: ServerProcess,
) -> None:
    """The viewer's aiortc receiver passes a frame to its decoder only once a packet of the next
    frame arrives. So after a page turn the frame that follows the new page's keyframe must come
    at once, not with the slow refresh: checked in the sender's media time (RTP timestamps),
    which the server sets from its clock when it encodes each frame."""
    await server.create_room("cardio-1", "correct horse")
    presenter = await joined_client(server, "Lecturer", password="correct horse")
    viewer = await joined_client(server, "Viewer", password="correct horse")
    red, blue = (200, 40, 40), (40, 40, 200)
    try:
        pages = [np.full((540, 960, 3), colour, dtype=np.uint8) for colour in (red, blue)]
        pdf = _encode(pages[0], "PDF", save_all=True, append_images=[Image.fromarray(pages[1])])
        status, body = await _upload(server, presenter, pdf)
        assert status == 201, body
        await presenter.send(
            {"type": "slides", "action": "show", "document_id": body["document_id"], "page": 1}
        )
        slides = await viewer.wait_for(lambda m: m["type"] == "slides" and m.get("presenter"))
        track_id = slides["track_id"]
        await viewer.wait_until(
            lambda: (
                track_id in viewer.received
                and any(_shows(p, red) for p in viewer.received[track_id].pictures)
            ),
            timeout=15,
        )
        track = viewer.received[track_id]

        await presenter.send({"type": "slides", "action": "page", "page": 2})

        def turned() -> list[DecodedPicture]:
            """The first picture of the new page and every picture decoded after it."""
            pictures = list(track.pictures)
            first = next((i for i, p in enumerate(pictures) if _shows(p, blue)), len(pictures))
            return pictures[first:]

        # The new page is decoded, and so is the frame after its keyframe (no further turn).
        await viewer.wait_until(lambda: len(turned()) >= 2, timeout=10)
        keyframe, follow_up = turned()[:2]
        assert _shows(follow_up, blue)
        gap = (follow_up.rtp_time - keyframe.rtp_time) % (1 << 32) / 90000
        assert 0 < gap < REFRESH_INTERVAL / 2, f"the next frame came {gap:.3f} s later"
    finally:
        await presenter.close()
        await viewer.close()


async def test_bad_uploads_are_refused_and_the_room_keeps_going(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    a = await joined_client(server, "A", password="correct horse")
    b = await joined_client(server, "B", password="correct horse")
    try:
        await a.publish({"microphone": ToneTrack(), "camera": ColourTrack((10, 10, 200))})
        aid = a.participant_id or ""
        await b.wait_until(lambda: b.frames_from(aid, "video") > 3)
        png = _encode(_quadrants(64, 64), "PNG")
        bomb = io.BytesIO()
        Image.new("1", (30000, 30000)).save(bomb, format="PNG")
        cases = {
            b"GIF89a not allowed": 415,
            b"hello, this is text": 415,
            png[: len(png) // 2]: 400,
            b"%PDF-1.4\n garbage that is not a pdf": 400,
            bomb.getvalue(): 422,
        }
        for data, status in cases.items():
            got, body = await _upload(server, a, data)
            assert got == status, (data[:20], got, body)
            assert body["error"] and body["message"]
        async with server.http.post(
            server.base_url + "/rooms/cardio-1/documents",
            data=png,
            headers={"Authorization": "Bearer not-a-token"},
        ) as r:
            assert r.status == 401
        reply = await a.request(
            {"type": "slides", "action": "show", "document_id": "d0", "page": 1}
        )
        assert reply["code"] == "unknown_document"
        status, body = await _upload(server, a, png)
        reply = await a.request(
            {"type": "slides", "action": "show", "document_id": body["document_id"], "page": 9}
        )
        assert reply["code"] == "bad_page"
        before = b.frames_from(aid, "video")
        await b.wait_until(lambda: b.frames_from(aid, "video") > before + 10)
    finally:
        await a.close()
        await b.close()


async def test_dicom_is_shown_with_its_window(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    presenter = await joined_client(server, "Radiologist", password="correct horse")
    viewer = await joined_client(server, "County doctor", password="correct horse")
    try:
        # Four stripes of stored values under window centre 2000 / width 2000 (1000..3000).
        stripes = np.repeat(np.array([0, 1500, 2500, 4000], dtype=np.uint16), 120)[None, :]
        data = dicom(stripes.repeat(270, 0), WindowCenter=2000, WindowWidth=2000)
        status, body = await _upload(server, presenter, data)
        assert status == 201 and body["kind"] == "dicom", body
        await presenter.send(
            {"type": "slides", "action": "show", "document_id": body["document_id"], "page": 1}
        )
        slides = await viewer.wait_for(lambda m: m["type"] == "slides" and m.get("presenter"))
        track_id = slides["track_id"]
        await viewer.wait_until(
            lambda: track_id in viewer.received and viewer.received[track_id].frames > 0, timeout=15
        )
        frame = viewer.received[track_id].last_frame.to_ndarray(format="rgb24")
        # 480x270 scales by 4 to 1920x1080; the stripe centres sit at x = 240, 720, 1200, 1680.
        greys = [int(frame[540, x].mean()) for x in (240, 720, 1200, 1680)]
        expected = [0, 64, 191, 255]  # below the window, inside it twice, above it
        assert all(abs(g - e) < 25 for g, e in zip(greys, expected, strict=True)), greys
    finally:
        await presenter.close()
        await viewer.close()


async def test_a_page_that_does_not_decode_is_refused_and_others_still_show(
    server: ServerProcess,
) -> None:
    await server.create_room("cardio-1", "correct horse")
    presenter = await joined_client(server, "Radiologist", password="correct horse")
    try:
        # Frames 1 and 2 are intact, frame 3 is cut short: found only when it is rendered.
        frames = np.full((3, 64, 64), 100, dtype=np.uint8)
        status, body = await _upload(server, presenter, dicom(frames, bits_stored=8)[:-2000])
        assert status == 201 and body["pages"] == 3, body
        document_id = body["document_id"]
        show = {"type": "slides", "action": "show", "document_id": document_id}
        reply = await presenter.request(show | {"page": 3})
        assert (reply["type"], reply["code"], reply["message"]) == (
            "error",
            "corrupt",
            "page 3 is damaged",
        )
        await presenter.send(show | {"page": 1})
        shown = await presenter.wait_for(lambda m: m["type"] == "slides" and m.get("page") == 1)
        assert shown["document_id"] == document_id
    finally:
        await presenter.close()
