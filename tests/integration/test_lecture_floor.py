"""A lecture's viewers watch: they never take the floor, upload, show slides, or evict a
lecturer's documents; and nobody's uploads evict another participant's documents."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from tests.support.room_client import RoomClient, joined_client
from tests.support.server import ServerProcess

PASSWORD = "lecturers-only"
VIEWERS = "for-every-site"


def _png(value: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((48, 64, 3), value, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


async def _upload(server: ServerProcess, room: str, client: RoomClient, data: bytes) -> Any:
    joined = next(m for m in client.messages if m["type"] == "joined")
    async with server.http.post(
        f"{server.base_url}/rooms/{room}/documents",
        data=data,
        headers={"Authorization": f"Bearer {joined['session_token']}"},
    ) as r:
        return r.status, await r.json()


async def test_a_viewer_cannot_take_the_floor_upload_or_show(server: ServerProcess) -> None:
    await server.create_room(
        "lesson-1", PASSWORD, "Lesson", kind="lecture", viewer_password=VIEWERS
    )
    lecturer = await joined_client(server, "Lecturer", room="lesson-1", password=PASSWORD)
    viewer = await joined_client(server, "Site", room="lesson-1", password=VIEWERS)
    try:
        reply = await viewer.request({"type": "floor", "action": "request"})
        assert (reply["type"], reply["code"]) == ("error", "forbidden"), reply
        status, body = await _upload(server, "lesson-1", viewer, _png(10))
        assert (status, body["error"]) == (403, "forbidden"), body
        reply = await viewer.request(
            {"type": "slides", "action": "show", "document_id": "d0", "page": 1}
        )
        assert reply["code"] == "forbidden", reply
        # The lecturer still presents, and no floor event ever named the viewer.
        status, body = await _upload(server, "lesson-1", lecturer, _png(200))
        assert status == 201, body
        await lecturer.send(
            {"type": "slides", "action": "show", "document_id": body["document_id"], "page": 1}
        )
        await lecturer.wait_for(lambda m: m["type"] == "slides" and m["presenter"])
        viewer_id = viewer.participant_id
        for client in (lecturer, viewer):
            floors = [m for m in client.messages if m["type"] == "floor"]
            assert floors and all(m["holder"] != viewer_id for m in floors), floors
    finally:
        await viewer.close()
        await lecturer.close()


async def test_uploads_never_evict_another_participants_documents(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    owner = await joined_client(server, "Owner", password="correct horse")
    other = await joined_client(server, "Other", password="correct horse")
    try:
        status, body = await _upload(server, "cardio-1", owner, _png(100))
        assert status == 201, body
        kept = body["document_id"]
        for i in range(25):  # more than the room holds
            status, body = await _upload(server, "cardio-1", other, _png(i))
            assert status == 201, body
        await owner.send({"type": "slides", "action": "show", "document_id": kept, "page": 1})
        shown = await owner.wait_for(lambda m: m["type"] in ("slides", "error"))
        assert shown["type"] == "slides" and shown["document_id"] == kept, shown
    finally:
        await other.close()
        await owner.close()
