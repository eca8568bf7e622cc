"""The library over real HTTP, in process: uploads, search, ranged playback, shares, recovery."""

from __future__ import annotations

import base64
import io
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from mcu.app.cluster.front import MAX_BODY_BYTES as FRONT_MAX_BODY_BYTES
from mcu.crypto.tokens import InviteSigner, ShareSigner
from mcu.library.api import setup_library
from mcu.library.playback import RangeNotSatisfiable, byte_range
from mcu.library.uploads import MAX_UPLOAD_BYTES
from mcu.recorder.catalogue import Catalogue
from mcu.signaling.endpoints.admin import setup_admin_api
from mcu.signaling.rooms.store import DB_FILENAME, RoomStore

TOKEN = "admin-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MASTER = b"m" * 32
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def _make_mp4() -> bytes:
    """A 2-second 320x240 H.264 clip at 25 fps."""
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        rng = np.random.default_rng(3)
        for index in range(50):
            picture = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
            picture[:, : index * 6] = 0
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


@pytest.fixture(scope="module")
def mp4() -> bytes:
    data = _make_mp4()
    assert data[4:8] == b"ftyp" and len(data) > 100_000
    return data


class _NoLiveRooms:
    def participant_count(self, room_id: str) -> int:
        return 0

    async def end_room(self, room_id: str, reason: str) -> None:
        return None

    async def set_recording(self, room_id: str, active: bool) -> dict[str, Any] | None:
        return None


@dataclass
class Library:
    client: TestClient[web.Request, web.Application]
    catalogue: Catalogue
    data_dir: Path
    signer: ShareSigner

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        response = await self.client.request(
            method,
            path,
            json=json,
            data=data,
            params=params,
            headers=AUTH if headers is None else headers,
        )
        text = await response.text()
        return response.status, (await response.json() if text else None)

    async def upload(self, body: bytes, **params: str) -> dict[str, Any]:
        status, item = await self.call("POST", "/api/library", data=body, params=params)
        assert status == 201, item
        assert isinstance(item, dict)
        return item


LibraryFactory = Callable[..., Awaitable[Library]]


@pytest.fixture
async def make_library(tmp_path: Path) -> AsyncIterator[LibraryFactory]:
    opened: list[tuple[TestClient[web.Request, web.Application], Catalogue, RoomStore]] = []

    async def make(*, encrypt_uploads: bool = False, max_upload_bytes: int = 2**31) -> Library:
        data_dir = tmp_path / f"data{len(opened)}"
        catalogue = await Catalogue.open(data_dir)
        store = await RoomStore.open(data_dir / DB_FILENAME)
        signer = ShareSigner(b"share-secret-for-tests-32-bytes!")
        app = web.Application()
        # The room admin API owns /api; the library must still get /api/library.
        setup_admin_api(
            app,
            store=store,
            signer=InviteSigner(b"i" * 32),
            admin_token=TOKEN,
            live=_NoLiveRooms(),
        )
        setup_library(
            app,
            catalogue=catalogue,
            data_dir=data_dir,
            master_key=MASTER,
            admin_token=TOKEN,
            signer=signer,
            encrypt_uploads=encrypt_uploads,
            max_upload_bytes=max_upload_bytes,
        )
        client = TestClient(TestServer(app))
        await client.start_server()
        opened.append((client, catalogue, store))
        return Library(client, catalogue, data_dir, signer)

    yield make
    for client, catalogue, store in opened:
        await client.close()
        await catalogue.close()
        await store.close()


@pytest.fixture
async def lib(make_library: LibraryFactory) -> Library:
    return await make_library()


def _disk_path(lib: Library, item_id: str) -> Path:
    files = list((lib.data_dir / "library" / item_id).iterdir())
    assert len(files) == 1
    return files[0]


async def test_upload_plain_and_encrypted(lib: Library, mp4: bytes) -> None:
    plain = await lib.upload(mp4, title="Suturing basics", department="Surgery")
    sealed = await lib.upload(
        mp4, title="Suturing, advanced", department="Surgery", encrypt="true", tags="skills,lab"
    )
    for item in (plain, sealed):
        assert item["kind"] == "upload" and item["status"] == "complete"
        assert item["files"][0]["media_type"] == "video/mp4"
        assert item["files"][0]["size"] == len(mp4)
        assert item["duration_s"] == pytest.approx(2.0, abs=0.1)
        assert item["play_url"] == f"/library/{item['id']}/play"
        assert "path" not in str(item) and "wrapped_key" not in str(item)
    assert not plain["files"][0]["encrypted"] and sealed["files"][0]["encrypted"]
    assert sealed["tags"] == ["skills", "lab"]

    assert _disk_path(lib, plain["id"]).read_bytes() == mp4
    on_disk = _disk_path(lib, sealed["id"]).read_bytes()
    assert on_disk[4:8] != b"ftyp" and b"ftyp" not in on_disk
    assert mp4[1000:2000] not in on_disk
    # The data key lives wrapped in the catalogue, nowhere near the file.
    stored = await lib.catalogue.get(sealed["id"])
    assert stored is not None and stored.files[0].wrapped_key is not None
    assert len(base64.b64decode(stored.files[0].wrapped_key)) == 40
    assert sorted(p.name for p in (lib.data_dir / "library" / sealed["id"]).iterdir()) == [
        "video.mp4"
    ]

    for item in (plain, sealed):
        response = await lib.client.get(item["play_url"], headers=AUTH)
        assert response.status == 200
        assert response.headers["Content-Type"] == "video/mp4"
        assert response.headers["Accept-Ranges"] == "bytes"
        assert await response.read() == mp4


async def test_server_default_encrypts(make_library: LibraryFactory, mp4: bytes) -> None:
    lib = await make_library(encrypt_uploads=True)
    item = await lib.upload(mp4, title="Default sealed")
    assert item["files"][0]["encrypted"]
    assert _disk_path(lib, item["id"]).read_bytes()[4:8] != b"ftyp"
    status, body = await lib.call(
        "POST", "/api/library", data=mp4, params={"title": "x", "encrypt": "false"}
    )
    assert status == 400 and body["error"] == "bad_request"


@pytest.mark.parametrize("encrypt", ["false", "true"])
async def test_ranges_return_exact_bytes(lib: Library, mp4: bytes, encrypt: str) -> None:
    item = await lib.upload(mp4, title="Ranges", encrypt=encrypt)
    url = f"/library/{item['id']}/files/video.mp4"
    size = len(mp4)
    cases = {
        "bytes=0-0": (0, 0),
        "bytes=100-65635": (100, 65635),  # crosses a chunk boundary
        "bytes=65536-131071": (65536, 131071),  # exactly one chunk
        f"bytes={size - 10}-": (size - 10, size - 1),
        "bytes=-500": (size - 500, size - 1),
        f"bytes=5000-{size + 1000}": (5000, size - 1),
        "bytes=1-1100000": (1, min(size - 1, 1_100_000)),  # more than one streaming window
    }
    for header, (first, last) in cases.items():
        response = await lib.client.get(url, headers={**AUTH, "Range": header})
        assert response.status == 206, header
        body = await response.read()
        assert body == mp4[first : last + 1], header
        assert response.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert int(response.headers["Content-Length"]) == last - first + 1
        assert response.headers["Accept-Ranges"] == "bytes"
        assert response.headers["Content-Type"] == "video/mp4"
    for header in (f"bytes={size}-", "bytes=-0"):
        response = await lib.client.get(url, headers={**AUTH, "Range": header})
        assert response.status == 416
        assert response.headers["Content-Range"] == f"bytes */{size}"
    # Malformed or multiple ranges: the whole file.
    for header in ("bytes=5-1", "items=0-1", "bytes=0-1,5-6"):
        response = await lib.client.get(url, headers={**AUTH, "Range": header})
        assert response.status == 200 and await response.read() == mp4


def test_byte_range_parsing() -> None:
    assert byte_range(None, 10) is None
    assert byte_range("bytes=2-4", 10) == (2, 4)
    assert byte_range("bytes=2-", 10) == (2, 9)
    assert byte_range("bytes=-3", 10) == (7, 9)
    assert byte_range("bytes=-30", 10) == (0, 9)
    assert byte_range("bytes=0-99", 10) == (0, 9)
    # Positions too long for any file (and for int() past 4,300 digits) are beyond its end.
    huge = "9" * 5000
    with pytest.raises(RangeNotSatisfiable):
        byte_range(f"bytes={huge}-", 10)
    assert byte_range(f"bytes=2-{huge}", 10) == (2, 9)
    assert byte_range(f"bytes=-{huge}", 10) == (0, 9)


def test_the_front_passes_on_uploads_as_large_as_the_library_takes() -> None:
    assert FRONT_MAX_BODY_BYTES >= MAX_UPLOAD_BYTES


async def test_pdf_upload_and_unsupported(lib: Library, mp4: bytes) -> None:
    item = await lib.upload(PDF, title="Slides week 1", department="Anatomy")
    assert item["files"][0]["media_type"] == "application/pdf"
    assert item["files"][0]["role"] == "slides"
    response = await lib.client.get(item["play_url"], headers=AUTH)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/pdf"
    assert await response.read() == PDF
    status, body = await lib.call("POST", "/api/library", data=b"GIF89a....", params={"title": "x"})
    assert status == 415 and body["error"] == "unsupported_type"
    # ftyp at byte 4 is no MP4: refused, and nothing is kept.
    for fake in (b"\0\0\0\x18ftypisom" + b"x" * 5000, b"\0\0\0\x08ftyp" + bytes(100)):
        status, body = await lib.call("POST", "/api/library", data=fake, params={"title": "x"})
        assert status == 415 and body["error"] == "unsupported_type", body
    status, listing = await lib.call("GET", "/api/library")
    assert [i["title"] for i in listing["items"]] == ["Slides week 1"], listing
    status, body = await lib.call("POST", "/api/library", data=b"", params={"title": "x"})
    assert status == 400
    status, body = await lib.call("POST", "/api/library", data=PDF, params={})
    assert status == 400 and body["message"] == "title: required"
    status, body = await lib.call("POST", "/api/library", data=PDF, params={"title": "x", "z": "1"})
    assert status == 400 and "'z'" in body["message"]
    assert not any((lib.data_dir / "library").glob("*/*.mp4"))


async def test_upload_size_limit(make_library: LibraryFactory, mp4: bytes) -> None:
    lib = await make_library(max_upload_bytes=50_000)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(mp4), 16_384):
            yield mp4[start : start + 16_384]

    # Streamed without Content-Length: refused once the limit is crossed, nothing left on disk.
    response = await lib.client.post(
        "/api/library", data=chunks(), params={"title": "big"}, headers=AUTH
    )
    assert response.status == 413
    assert (await response.json())["error"] == "too_large"
    assert not list((lib.data_dir / "library").glob("*/*"))
    assert (await lib.catalogue.query()).total == 0


async def test_query(lib: Library, mp4: bytes) -> None:
    a = await lib.upload(
        PDF, title="Cardiac auscultation", department="Cardiology", lecturer="Dr Ávila"
    )
    b = await lib.upload(PDF, title="ECG reading", department="Cardiology", tags="ecg,rhythm")
    c = await lib.upload(PDF, title="Fracture management", department="Orthopaedics")
    # Spread the recording times so ordering and date filters are checkable.
    day = 86_400.0
    base = 1_900_000_000.0  # 2030-03-17
    for offset, item in enumerate((a, b, c)):
        stored = await lib.catalogue.get(item["id"])
        assert stored is not None
        await lib.catalogue.delete(item["id"])
        await lib.catalogue.create(replace(stored, recorded_at=base + offset * day))

    async def ids(**params: str) -> list[str]:
        status, body = await lib.call("GET", "/api/library", params=params)
        assert status == 200, body
        assert body["total"] >= len(body["items"])
        return [item["id"] for item in body["items"]]

    assert await ids() == [c["id"], b["id"], a["id"]]  # newest first
    assert await ids(q="cardiac") == [a["id"]]
    assert await ids(q="avila") == [a["id"]]  # lecturer, diacritics folded
    assert await ids(q="rhythm") == [b["id"]]  # tags
    assert await ids(q="orthopaed") == [c["id"]]  # department, word prefix
    assert await ids(q="ecg reading") == [b["id"]]
    assert await ids(q='"; DROP TABLE items; --') == []
    assert await ids(department="cardiology") == [b["id"], a["id"]]
    assert await ids(**{"from": "2030-03-18"}) == [c["id"], b["id"]]
    assert await ids(to="2030-03-18") == [b["id"], a["id"]]
    assert await ids(**{"from": "2030-03-18T00:00:00Z", "to": "2030-03-18T23:00:00+00:00"}) == [
        b["id"]
    ]
    status, body = await lib.call("GET", "/api/library", params={"limit": "2", "offset": "1"})
    assert [item["id"] for item in body["items"]] == [b["id"], a["id"]] and body["total"] == 3
    for bad in ({"from": "2030-03-18T10:00:00"}, {"limit": "0"}, {"nope": "1"}, {"to": "x"}):
        status, body = await lib.call("GET", "/api/library", params=bad)
        assert status == 400 and body["error"] == "bad_request", bad


async def test_get_patch_delete(lib: Library, mp4: bytes) -> None:
    item = await lib.upload(mp4, title="Draft", encrypt="true")
    status, body = await lib.call("GET", f"/api/library/{item['id']}")
    assert status == 200 and body == item
    status, body = await lib.call(
        "PATCH",
        f"/api/library/{item['id']}",
        json={"title": " Final ", "department": "Neurology", "lecturer": "Dr N", "tags": ["eeg"]},
    )
    assert status == 200
    assert (body["title"], body["department"], body["lecturer"], body["tags"]) == (
        "Final",
        "Neurology",
        "Dr N",
        ["eeg"],
    )
    status, body = await lib.call("GET", "/api/library", params={"q": "eeg"})
    assert [found["id"] for found in body["items"]] == [item["id"]]
    status, body = await lib.call("PATCH", f"/api/library/{item['id']}", json={"lecturer": None})
    assert status == 200 and body["lecturer"] is None and body["department"] == "Neurology"
    for bad in ({"title": None}, {"title": ""}, {"tags": "eeg"}, {"id": "x"}):
        status, body = await lib.call("PATCH", f"/api/library/{item['id']}", json=bad)
        assert status == 400, bad

    path = _disk_path(lib, item["id"])
    status, body = await lib.call("DELETE", f"/api/library/{item['id']}")
    assert status == 204
    assert not path.exists() and not path.parent.exists()
    assert await lib.catalogue.get(item["id"]) is None
    for method in ("GET", "DELETE", "PATCH"):
        status, body = await lib.call(method, f"/api/library/{item['id']}", json={})
        assert status == 404 and body["error"] == "not_found"


async def test_staff_api_needs_admin_token(lib: Library) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-000000000000"},
        {"Authorization": TOKEN},
    ):
        for method, path in (
            ("GET", "/api/library"),
            ("POST", "/api/library"),
            ("GET", "/api/library/x"),
        ):
            status, body = await lib.call(method, path, headers=headers)
            assert status == 401 and body["error"] == "unauthorized", (method, path)
    # The room admin API still answers beside it.
    status, body = await lib.call("GET", "/api/rooms")
    assert status == 200 and body == {"rooms": []}


async def test_share_links(lib: Library, mp4: bytes) -> None:
    item = await lib.upload(mp4, title="Shared", encrypt="true")
    other = await lib.upload(PDF, title="Other")
    status, share = await lib.call(
        "POST", f"/api/library/{item['id']}/share", json={"ttl_seconds": 600}
    )
    assert status == 201
    assert share["url"] == f"/library/{item['id']}/play?token={share['token']}"

    response = await lib.client.get(share["url"], headers={"Range": "bytes=10-20"})
    assert response.status == 206 and await response.read() == mp4[10:21]
    token = share["token"]
    response = await lib.client.get(
        f"/library/{item['id']}/files/video.mp4", params={"token": token}
    )
    assert response.status == 200 and await response.read() == mp4

    async def refused(url: str, **params: str) -> tuple[int, str]:
        response = await lib.client.get(url, params=params)
        body = await response.json()
        assert set(body) == {"error", "message"} and "/" not in body["message"]
        return response.status, body["error"]

    assert await refused(f"/library/{item['id']}/play") == (401, "unauthorized")
    assert await refused(f"/library/{other['id']}/play", token=token) == (403, "forbidden")
    assert await refused(f"/library/{item['id']}/play", token=token[:-2]) == (401, "unauthorized")
    expired = lib.signer.issue(item["id"], 60, now=time.time() - 61)
    assert await refused(f"/library/{item['id']}/play", token=expired) == (401, "unauthorized")
    foreign = ShareSigner(b"another-secret-of-32-bytes-long!").issue(item["id"], 600)
    assert await refused(f"/library/{item['id']}/play", token=foreign) == (401, "unauthorized")
    assert await refused(f"/library/{item['id']}/files/nope.mp4", token=token) == (404, "not_found")
    assert await refused("/library/unknown-item/play", token=token) == (403, "forbidden")
    assert await refused("/library/unknown-item/play") == (401, "unauthorized")
    # A repeated token is refused, whichever of the two is valid.
    response = await lib.client.get(f"/library/{item['id']}/play?token={token}&token=x")
    assert response.status == 400 and (await response.json())["error"] == "bad_request"

    for body in ({"ttl_seconds": 10}, {"ttl_seconds": "600"}, {"extra": 1}):
        status, reply = await lib.call("POST", f"/api/library/{item['id']}/share", json=body)
        assert status == 400 and reply["error"] == "bad_request", body
    status, _ = await lib.call("POST", "/api/library/nope/share", json={})
    assert status == 404


async def test_tampered_file_is_refused(lib: Library, mp4: bytes) -> None:
    item = await lib.upload(mp4, title="Tampered", encrypt="true")
    path = _disk_path(lib, item["id"])
    raw = bytearray(path.read_bytes())
    raw[200] ^= 1
    path.write_bytes(raw)
    response = await lib.client.get(item["play_url"], headers={**AUTH, "Range": "bytes=0-99"})
    assert response.status == 500
    assert (await response.json())["error"] == "corrupt"


HUGE = "9" * 5000  # past Python's 4,300-digit limit for int() on a string


@pytest.mark.parametrize(
    ("params", "field"),
    [
        # Valid dates and times whose day after, or whose UTC time, leaves datetime's range.
        ({"to": "9999-12-31"}, "to"),
        ({"from": "9999-12-31"}, "from"),
        ({"to": "9999-12-31T23:59:59-14:00"}, "to"),
        ({"from": "0001-01-01T00:00:00+14:00"}, "from"),
        ({"from": "0001-01-01"}, "from"),
        ({"to": "2030-02-30"}, "to"),
        ({"limit": HUGE}, "limit"),
        ({"limit": "-" + HUGE}, "limit"),
        ({"offset": HUGE}, "offset"),
        ({"limit": "1e999"}, "limit"),
    ],
)
async def test_out_of_range_query_values_are_400_naming_the_field(
    lib: Library, params: dict[str, str], field: str
) -> None:
    status, body = await lib.call("GET", "/api/library", params=params)
    assert status == 400, body
    assert body["error"] == "bad_request" and body["message"].startswith(f"{field}:"), body


@pytest.mark.parametrize(
    "body",
    [
        f'{{"ttl_seconds": {HUGE}}}',
        '{"ttl_seconds": 1e999}',
    ],
)
async def test_out_of_range_share_ttl_is_400_naming_the_field(lib: Library, body: str) -> None:
    item = await lib.upload(PDF, title="Share me")
    response = await lib.client.post(
        f"/api/library/{item['id']}/share",
        data=body.encode(),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    reply = await response.json()
    assert response.status == 400, reply
    assert reply["error"] == "bad_request" and "ttl_seconds" in reply["message"], reply


async def test_range_with_huge_positions(lib: Library) -> None:
    item = await lib.upload(PDF, title="Ranges")
    url = f"/library/{item['id']}/files/document.pdf"
    size = len(PDF)
    # Starts past any end: 416; an end past the end is the end; a huge suffix is the whole file.
    response = await lib.client.get(url, headers={**AUTH, "Range": f"bytes={HUGE}-"})
    assert response.status == 416
    assert response.headers["Content-Range"] == f"bytes */{size}"
    # (Two 5,000-digit numbers would pass aiohttp's 8,190-byte header limit: it answers 400.)
    response = await lib.client.get(url, headers={**AUTH, "Range": f"bytes={'9' * 30}-{'9' * 40}"})
    assert response.status == 416
    for header in (f"bytes=3-{HUGE}", f"bytes=-{HUGE}", f"bytes=0000000000000000000000003-{HUGE}"):
        response = await lib.client.get(url, headers={**AUTH, "Range": header})
        assert response.status == 206, header
        first = 0 if "=-" in header else 3
        assert await response.read() == PDF[first:], header
        assert response.headers["Content-Range"] == f"bytes {first}-{size - 1}/{size}"


def test_byte_range_parsing_of_huge_numbers() -> None:
    assert byte_range(f"bytes=2-{HUGE}", 10) == (2, 9)
    assert byte_range(f"bytes=-{HUGE}", 10) == (0, 9)
    assert byte_range(f"bytes={'0' * 5000}1-2", 10) == (1, 2)
    with pytest.raises(RangeNotSatisfiable):
        byte_range(f"bytes={HUGE}-", 10)


async def test_the_staff_page_and_its_files_come_from_the_library(lib: Library) -> None:
    async with lib.client.get("/library") as r:
        assert r.status == 200
        html = await r.text()
    # The sign-in form cannot submit as a GET (the token in the address bar) before the script.
    assert '<form id="token-form" class="stack" method="post"' in html
    (button,) = re.findall(r'<button id="token-submit"[^>]*>', html)
    assert 'type="submit"' in button and re.search(r"\sdisabled[\s>]", button), button
    # Submitted all the same: the page again, the token neither echoed nor in a redirect.
    async with lib.client.post("/library", data={"token": TOKEN}, allow_redirects=False) as r:
        assert r.status == 200 and TOKEN not in await r.text()
    for name in ("library.js", "library-api.js", "library.css"):
        async with lib.client.get(f"/library/static/{name}") as r:
            assert r.status == 200, name
    async with lib.client.get("/library/static/../api.py") as r:
        assert r.status == 404
