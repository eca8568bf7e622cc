"""Recovery cuts a track file a crash left behind back to its last whole fragment.

Files are appended to and never rewritten, so every prefix of a finished file is a state a
SIGKILL could have left; each such prefix must come back decoding without a single error.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from mcu.crypto.atrest import (
    CHUNK_SIZE,
    EncryptingWriter,
    file_info,
    new_data_key,
    plaintext_size,
    read_range,
)
from mcu.media import TrackSource
from mcu.recorder.salvage import clean_ends, salvage
from mcu.recorder.timeline import RecordingClock
from mcu.recorder.writer import TrackWriter
from tests.support.media_checks import decodes_cleanly
from tests.unit.test_recorder_writer import (
    H264,
    OPUS,
    T0,
    Publisher,
    send_audio,
    send_video,
)

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def box(kind: bytes, body: int = 8) -> bytes:
    return struct.pack(">I4s", 8 + body, kind) + bytes(body)


INIT = box(b"ftyp") + box(b"moov", 40)
FRAGMENT = box(b"moof", 30) + box(b"mdat", 100)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", []),
        (INIT, []),  # no media yet
        (INIT + FRAGMENT, [len(INIT + FRAGMENT)]),
        (INIT + FRAGMENT + FRAGMENT[:50], [len(INIT + FRAGMENT)]),  # torn moof
        (INIT + FRAGMENT + box(b"moof", 30), [len(INIT + FRAGMENT)]),  # moof, no mdat
        (INIT + FRAGMENT + FRAGMENT[:-1], [len(INIT + FRAGMENT)]),  # mdat one byte short
        (INIT + FRAGMENT + FRAGMENT[:5], [len(INIT + FRAGMENT)]),  # torn box header
        (INIT + 2 * FRAGMENT, [len(INIT + FRAGMENT), len(INIT + 2 * FRAGMENT)]),
        (INIT + FRAGMENT + box(b"mfra", 20), [len(INIT + FRAGMENT), len(INIT + FRAGMENT) + 28]),
        (FRAGMENT, []),  # no moov: nothing a player could use
        (box(b"ftyp") + box(b"mdat", 50) + box(b"moov"), [90]),  # a whole plain MP4
        (
            INIT + struct.pack(">I4sQ", 1, b"mdat", 16 + 4) + bytes(4),  # 64-bit size
            [len(INIT) + 20],
        ),
        (INIT + box(b"moof", 30) + struct.pack(">I4s", 4, b"mdat"), []),  # impossible size
    ],
)
def test_clean_ends(data: bytes, expected: list[int]) -> None:
    assert clean_ends(lambda offset, length: data[offset : offset + length], len(data)) == expected


async def _record(tmp_path: Path, key: bytes | None) -> tuple[Path, Path]:
    """4 s of H.264 with pictures of tens of kB (fragments larger than a 64 KiB chunk) and
    4 s of Opus (fragments far smaller), written as the recorder writes them."""
    clock = RecordingClock.start(monotonic=T0, wall=0.0)
    paths = []
    for codec, source in ((H264, TrackSource.CAMERA), (OPUS, TrackSource.MICROPHONE)):
        publisher = Publisher(codec, source)
        path = tmp_path / f"{source}.mp4"
        file = path.open("wb")
        output = file if key is None else EncryptingWriter(file, key)
        writer = TrackWriter(publisher.producer.codec, output, clock, keyframes=publisher.producer)
        publisher.producer.add_sink(writer)
        if codec is H264:
            send_video(publisher, T0, 4.0, size=(640, 360))
        else:
            send_audio(publisher, T0, 4.0)
        await writer.aclose()
        assert writer.error is None
        paths.append(path)
    return paths[0], paths[1]


def _plaintext(path: Path, key: bytes | None) -> bytes:
    if key is None:
        return path.read_bytes()
    size = plaintext_size(path)
    return read_range(path, key, 0, size - 1) if size else b""


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
async def test_every_crash_point_recovers_to_a_clean_file(tmp_path: Path, encrypted: bool) -> None:
    key = new_data_key() if encrypted else None
    camera, microphone = await _record(tmp_path, key)
    if encrypted:
        assert plaintext_size(camera) > 4 * CHUNK_SIZE  # a 1 s fragment spans chunks
    for original in (camera, microphone):
        whole = original.read_bytes()
        recovered_some = 0
        for step in range(1, 12):
            cut = len(whole) * step // 12 + step  # odd offsets: mid-record, mid-box
            crashed = tmp_path / f"crashed-{step}-{original.name}"
            crashed.write_bytes(whole[:cut])
            result = salvage(crashed, key)
            plain = _plaintext(crashed, key)
            assert len(plain) == result.kept
            if result.kept == 0:
                continue  # killed before the first whole fragment: nothing to keep
            recovered_some += 1
            if key is not None:
                assert file_info(crashed).torn_bytes == 0
            check = tmp_path / f"check-{step}-{original.name}"
            check.write_bytes(plain)
            assert decodes_cleanly(check), (original.name, cut, len(whole))
        assert recovered_some >= 8, original.name


async def test_a_closed_file_is_left_alone(tmp_path: Path) -> None:
    key = new_data_key()
    camera, _microphone = await _record(tmp_path, key)
    before = camera.read_bytes()
    assert salvage(camera, key).cut == 0
    assert camera.read_bytes() == before
    (tmp_path / "plain").mkdir()
    plain_camera, _ = await _record(tmp_path / "plain", None)
    before = plain_camera.read_bytes()
    assert salvage(plain_camera, None).cut == 0
    assert plain_camera.read_bytes() == before
