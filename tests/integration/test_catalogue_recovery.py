"""The library catalogue after a crash: recordings cut to whole fragments, finished or forgotten."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
import numpy as np

from mcu.crypto.atrest import new_data_key, open_encrypted_writer, read_range, wrap_key
from mcu.recorder.catalogue import Catalogue, LibraryFile, LibraryItem, recover

MASTER = b"m" * 32


def _fragmented_mp4(seconds: int) -> bytes:
    """H.264 in fragments of one second, as the recorder writes tracks."""
    out = io.BytesIO()
    options = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "frag_duration": "1000000"}
    with av.open(out, "w", format="mp4", options=options) as container:
        stream = container.add_stream("libx264", rate=25, options={"g": "25"})
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        rng = np.random.default_rng(4)
        for _ in range(25 * seconds):
            picture = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


async def test_recover_cuts_to_whole_fragments_completes_fails_or_forgets(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    catalogue = await Catalogue.open(data_dir)
    folder = data_dir / "recordings" / "r1"
    folder.mkdir(parents=True)
    key = new_data_key()
    mp4 = _fragmented_mp4(3)
    boxes = _box_ends(mp4)  # ftyp, moov, moof, mdat, moof, mdat, moof, ...
    two = boxes[5]  # the end of the second whole fragment
    # A server killed mid-recording. Encrypted: every fragment flushed (so it ends a chunk;
    # the second spans several full ones), then part of the third in two flushes, the last of
    # them torn on disk. Plain: killed half-way through the third fragment's moof.
    writer = open_encrypted_writer(folder / "alice-camera.mp4", key)
    for start, end in [(0, boxes[3]), (boxes[3], two), (two, two + 100), (two + 100, two + 200)]:
        writer.write(mp4[start:end])
        writer.flush()
    sealed = (folder / "alice-camera.mp4").read_bytes()
    (folder / "alice-camera.mp4").write_bytes(sealed[:-50])
    (folder / "alice-microphone.mp4").write_bytes(mp4[: (two + boxes[6]) // 2])
    started = time.time() - 30

    def track(name: str, *, encrypted: bool = False, room: str = "r1") -> LibraryFile:
        return LibraryFile(
            name=name,
            role="track",
            media_type="video/mp4",
            path=f"recordings/{room}/{name}",
            encrypted=encrypted,
            wrapped_key=base64.b64encode(wrap_key(MASTER, key)).decode() if encrypted else None,
            plaintext_size=0,
        )

    common: dict[str, Any] = {"kind": "recording", "status": "recording", "room_id": "cardio-1"}
    files = (
        track("alice-camera.mp4", encrypted=True),
        track("alice-microphone.mp4"),
        track("bob.mp4"),  # never reached the disk
    )
    await catalogue.create(
        LibraryItem(id="r1", title="Ward round", recorded_at=started, files=files, **common)
    )
    await catalogue.create(
        LibraryItem(id="r2", title="Lost", recorded_at=started, files=files[2:], **common)
    )
    await catalogue.create(
        LibraryItem(id="r3", title="Done", recorded_at=started, **{**common, "status": "complete"})
    )
    # Someone who only looked in: an empty folder, or a file without one whole fragment.
    (data_dir / "recordings" / "r4").mkdir()
    (data_dir / "recordings" / "r4" / "carol.mp4").write_bytes(mp4[: boxes[1] + 10])
    await catalogue.create(
        LibraryItem(
            id="r4",
            title="Nobody",
            recorded_at=started,
            files=(track("carol.mp4", room="r4"),),
            **common,
        )
    )
    (data_dir / "recordings" / "r5").mkdir()
    await catalogue.create(LibraryItem(id="r5", title="Nobody", recorded_at=started, **common))
    await catalogue.close()

    changed = await recover(data_dir, MASTER)
    assert sorted(item.id for item in changed) == ["r1", "r2"]

    catalogue = await Catalogue.open(data_dir)
    try:
        r1 = await catalogue.get("r1")
        assert r1 is not None and r1.status == "complete"
        assert [f.name for f in r1.files] == ["alice-camera.mp4", "alice-microphone.mp4"]
        # Each cut back to its last whole fragment (the encrypted one at a chunk boundary).
        assert r1.files[0].plaintext_size == two
        assert read_range(folder / "alice-camera.mp4", key, 0, two - 1) == mp4[:two]
        assert r1.files[1].plaintext_size == two
        assert (folder / "alice-microphone.mp4").read_bytes() == mp4[:two]
        disk = (folder / "alice-camera.mp4").stat().st_size + two
        assert r1.size_bytes == disk
        assert r1.duration_s is not None and 25 <= r1.duration_s <= 40
        r2 = await catalogue.get("r2")
        assert r2 is not None and r2.status == "failed"
        r3 = await catalogue.get("r3")
        assert r3 is not None and r3.status == "complete"
        for gone in ("r4", "r5"):
            assert await catalogue.get(gone) is None
            assert not (data_dir / "recordings" / gone).exists()
        assert await catalogue.recover(MASTER) == []
    finally:
        await catalogue.close()
        writer.close()


async def test_a_discarded_recording_has_no_folder_once_the_library_forgets_it(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    catalogue = await Catalogue.open(data_dir)
    try:
        common: dict[str, Any] = {"kind": "recording", "status": "recording", "room_id": "r"}
        for item_id in ("empty", "kept"):
            (data_dir / "recordings" / item_id).mkdir(parents=True)
            await catalogue.create(
                LibraryItem(id=item_id, title="Looked in", recorded_at=time.time(), **common)
            )
        (data_dir / "recordings" / "kept" / "a.mp4").write_bytes(b"x")
        # A reader that learns the item is gone (as the API's 404 does) finds no folder either,
        # even while the loop's shared thread pool is busy with other work.
        loop = asyncio.get_running_loop()
        busy = threading.Event()
        loop.set_default_executor(ThreadPoolExecutor(1))
        hog = loop.run_in_executor(None, busy.wait, 10)
        discard = asyncio.create_task(catalogue.discard_unfinished("empty"))
        await asyncio.sleep(0)
        try:
            assert await catalogue.get("empty") is None
            assert not (data_dir / "recordings" / "empty").exists()
        finally:
            busy.set()
            await hog
        assert await discard is True
        # A folder with something in it is never deleted here.
        assert await catalogue.discard_unfinished("kept") is True
        assert (data_dir / "recordings" / "kept" / "a.mp4").exists()
        assert await catalogue.discard_unfinished("kept") is False
    finally:
        await catalogue.close()


def _box_ends(data: bytes) -> list[int]:
    """Where each top-level box ends: ftyp, moov, then moof and mdat by turns."""
    ends, position = [], 0
    while position + 8 <= len(data):
        position += int.from_bytes(data[position : position + 4], "big")
        ends.append(position)
    return ends
