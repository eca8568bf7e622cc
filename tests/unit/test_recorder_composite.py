"""make_composite: two participants recorded by TrackWriter, composed into one H.264 + AAC file."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from mcu.media import TrackSource
from mcu.mixer.layout import LayoutInput, compute_layout
from mcu.recorder.composite import RecordedTrack, make_composite
from mcu.recorder.timeline import RecordingClock
from tests.unit.test_recorder_writer import (
    H264,
    OPUS,
    T0,
    VP8,
    Publisher,
    duration,
    ffprobe,
    send_audio,
    send_video,
    writer_for,
)

pytestmark = pytest.mark.skipif(ffprobe is None, reason="needs ffprobe")

RED = (200, 30, 30)
BLUE = (30, 30, 200)
SIZE = (640, 360)


async def _record(tmp_path: Path) -> list[RecordedTrack]:
    """Alice (H.264 camera and a microphone) from 0 to 2 s; Bob (VP8 camera) from 1 to 3 s."""
    clock = RecordingClock.start(monotonic=T0, wall=0.0)
    alice_cam, alice_mic, bob_cam = (
        Publisher(H264, TrackSource.CAMERA),
        Publisher(OPUS, TrackSource.MICROPHONE),
        Publisher(VP8, TrackSource.CAMERA),
    )
    writers = [
        writer_for(alice_cam, tmp_path / "alice-camera.mp4", clock),
        writer_for(alice_mic, tmp_path / "alice-microphone.mp4", clock),
        writer_for(bob_cam, tmp_path / "bob-camera.mp4", clock),
    ]
    send_video(alice_cam, T0, 2.0, rgb=RED)
    send_audio(alice_mic, T0, 2.0)
    send_video(bob_cam, T0 + 1.0, 2.0, rgb=BLUE)
    for writer in writers:
        await writer.aclose()
        assert writer.error is None
    return [
        RecordedTrack(tmp_path / "alice-camera.mp4", "video", "camera", "Alice", 0.0),
        RecordedTrack(tmp_path / "alice-microphone.mp4", "audio", "microphone", "Alice", 0.0),
        RecordedTrack(
            tmp_path / "bob-camera.mp4", "video", "camera", "Bob", writers[2].started_at or 0.0
        ),
    ]


def _pictures_at(path: Path, times: list[float]) -> list[np.ndarray]:
    found: dict[float, np.ndarray] = {}
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            for t in times:
                if t not in found and (frame.time or 0.0) >= t:
                    found[t] = frame.to_ndarray(format="rgb24")
    return [found[t] for t in times]


def _near(pixel: np.ndarray, rgb: tuple[int, int, int]) -> bool:
    return int(np.abs(pixel.astype(int) - rgb).max()) < 30


async def test_composite_of_two_participants(tmp_path: Path) -> None:
    tracks = await _record(tmp_path)
    assert tracks[2].start_offset_s == pytest.approx(1.0)
    out = tmp_path / "composite.mp4"
    make_composite(tracks, out, size=SIZE, fps=25)

    probe = ffprobe(out)
    assert sorted(s["codec_name"] for s in probe["streams"]) == ["aac", "h264"]
    assert duration(probe) == pytest.approx(3.0, abs=0.2)

    alone, both, bob_alone = _pictures_at(out, [0.5, 1.5, 2.8])
    centre = (SIZE[1] * 3 // 4, SIZE[0] * 3 // 4)  # clear of each source's noisy corner
    assert _near(alone[centre], RED)
    assert _near(bob_alone[centre], BLUE)
    tiles = compute_layout("grid", [LayoutInput("a", "Alice"), LayoutInput("b", "Bob")], SIZE)
    for tile, rgb in zip(tiles, (RED, BLUE), strict=True):
        pixel = both[tile.y + tile.height * 3 // 4 - 20, tile.x + tile.width * 3 // 4]
        assert _near(pixel, rgb), (tile, pixel)

    # Alice's voice while she is there, silence after.
    with av.open(str(out)) as container:
        sound = np.concatenate(
            [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
        ).astype(np.float32)
    rate = 48000
    assert np.sqrt(np.mean(sound[int(0.5 * rate) : int(1.5 * rate)] ** 2)) > 0.05
    assert np.sqrt(np.mean(sound[int(2.3 * rate) : int(2.9 * rate)] ** 2)) < 0.01
