"""TrackWriter: real encoded media from aiortc's encoders, through a Producer, into MP4 files.

Packets are fed faster than real time with explicit arrival times; ffprobe and ffmpeg judge the
files.
"""

from __future__ import annotations

import fractions
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder

from mcu.media import CodecInfo, TrackSource
from mcu.recorder.timeline import RecordingClock
from mcu.recorder.writer import TrackWriter
from mcu.sfu.producer import Producer
from tests.support.media_checks import decodes_cleanly, ffprobe

pytestmark = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe/ffmpeg")

H264 = CodecInfo("video/H264", 90000, None, (("packetization-mode", "1"),))
VP8 = CodecInfo("video/VP8", 90000)
OPUS = CodecInfo("audio/opus", 48000, 2)
T0 = 1000.0
"The recording's start on the (fake) monotonic clock."
FPS = 30


def decodes(path: Path) -> bool:
    """Decodes without a fatal error (a cut file's last fragment is incomplete: not -xerror)."""
    run = subprocess.run(
        ["ffmpeg", "-v", "quiet", "-i", str(path), "-f", "null", "-"], timeout=30
    )  # fmt: skip
    return run.returncode == 0


def frame_count(path: Path) -> int:
    out = subprocess.run(
        [
            "ffprobe", "-v", "quiet", "-count_frames", "-select_streams", "0",
            "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path),
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    try:
        return int(out.stdout.strip().strip(","))
    except ValueError:
        return 0


def never(number: int) -> bool:
    return False


def colour_frame(rgb: tuple[int, int, int], index: int, size: tuple[int, int]) -> av.VideoFrame:
    width, height = size
    image = np.empty((height, width, 3), np.uint8)
    image[...] = rgb
    # Noise in the top-left corner: pictures of several packets each, like a real camera's.
    noise = np.random.default_rng(index).integers(0, 256, (height // 4, width // 4, 3))
    image[: height // 4, : width // 4] = noise
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    frame.pts = index * 3000
    frame.time_base = fractions.Fraction(1, 90000)
    return frame


def tone_frame(index: int, hz: float = 440.0) -> av.AudioFrame:
    t = (np.arange(960) + index * 960) / 48000
    samples = (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate = 48000
    frame.pts = index * 960
    frame.time_base = fractions.Fraction(1, 48000)
    return frame


class Publisher:
    """One track of a fake publisher: encodes frames, packetises them into a Producer.

    Sequence numbers and RTP timestamps start just before their wrap-arounds. A keyframe request
    from the producer makes the next picture a keyframe, as a browser answers a PLI.
    """

    def __init__(self, codec: CodecInfo, source: TrackSource) -> None:
        self.producer = Producer("t", "p", source, codec, self._keyframe_requested)
        self.encoder: Any = {
            "video/H264": H264Encoder,
            "video/VP8": Vp8Encoder,
            "audio/opus": OpusEncoder,
        }[codec.mime_type]()
        self.sequence = 65_500
        self.timestamp_base = 0xFFFFFFFF - 2 * codec.clock_rate  # wraps 2 s in
        self.force_keyframe = False
        self.packets_sent = 0

    def _keyframe_requested(self) -> None:
        self.force_keyframe = True

    def send(self, frame: av.frame.Frame, arrival: float, *, lose: Callable[[int], bool] = never):
        payloads, timestamp = self.encoder.encode(frame, self.force_keyframe)
        self.force_keyframe = False
        for i, payload in enumerate(payloads):
            number = self.packets_sent
            self.packets_sent += 1
            sequence, self.sequence = self.sequence, (self.sequence + 1) & 0xFFFF
            if lose(number):
                continue
            self.producer.on_rtp(
                sequence,
                (self.timestamp_base + timestamp) & 0xFFFFFFFF,
                i == len(payloads) - 1,
                payload,
                None,
                arrival,
            )


def writer_for(publisher: Publisher, path: Path, clock: RecordingClock, **kw: Any) -> TrackWriter:
    writer = TrackWriter(
        publisher.producer.codec, path.open("wb"), clock, keyframes=publisher.producer, **kw
    )
    publisher.producer.add_sink(writer)
    return writer


def send_video(
    publisher: Publisher,
    start: float,
    seconds: float,
    rgb: tuple[int, int, int] = (200, 30, 30),
    size: tuple[int, int] = (320, 180),
    lose: Callable[[int], bool] = never,
) -> None:
    for i in range(round(seconds * FPS)):
        publisher.send(colour_frame(rgb, i, size), start + i / FPS, lose=lose)


def send_audio(
    publisher: Publisher, start: float, seconds: float, lose: Callable[[int], bool] = never
) -> None:
    for i in range(round(seconds * 50)):
        publisher.send(tone_frame(i), start + i * 0.02, lose=lose)


def start_time(probe: dict[str, Any]) -> float:
    return float(probe["streams"][0]["start_time"])


def duration(probe: dict[str, Any]) -> float:
    return float(probe["format"]["duration"])


async def test_h264_copied_and_opus_kept_in_sync_at_their_offset(tmp_path: Path) -> None:
    clock = RecordingClock.start(monotonic=T0, wall=0.0)
    camera = Publisher(H264, TrackSource.CAMERA)
    microphone = Publisher(OPUS, TrackSource.MICROPHONE)
    video = writer_for(camera, tmp_path / "camera.mp4", clock)
    audio = writer_for(microphone, tmp_path / "microphone.mp4", clock)
    # The participant joined 1.5 s into the recording; 3 s of each, across the RTP wraps.
    send_video(camera, T0 + 1.5, 3.0)
    send_audio(microphone, T0 + 1.5, 3.0)
    camera.producer.close()
    microphone.producer.close()
    await video.aclose()
    await audio.aclose()

    assert video.error is None and audio.error is None
    assert video.frames_written == 90 and audio.frames_written == 150
    assert video.started_at == pytest.approx(1.5) and audio.started_at == pytest.approx(1.5)
    assert video.bytes_written == (tmp_path / "camera.mp4").stat().st_size
    v, a = ffprobe(tmp_path / "camera.mp4"), ffprobe(tmp_path / "microphone.mp4")
    assert v["streams"][0]["codec_name"] == "h264"
    assert (v["streams"][0]["width"], v["streams"][0]["height"]) == (320, 180)
    assert a["streams"][0]["codec_name"] == "opus"
    assert start_time(v) == pytest.approx(1.5, abs=0.05)
    assert abs(start_time(a) - start_time(v)) <= 0.1
    assert duration(v) == pytest.approx(3.0, abs=0.15)
    assert duration(a) == pytest.approx(3.0, abs=0.15)
    assert decodes_cleanly(tmp_path / "camera.mp4")
    assert decodes_cleanly(tmp_path / "microphone.mp4")
    assert frame_count(tmp_path / "camera.mp4") == 90


async def test_vp8_is_transcoded_to_h264(tmp_path: Path) -> None:
    clock = RecordingClock.start(monotonic=T0, wall=0.0)
    camera = Publisher(VP8, TrackSource.CAMERA)
    writer = writer_for(camera, tmp_path / "vp8.mp4", clock)
    send_video(camera, T0, 2.0, rgb=(30, 200, 30))
    await writer.aclose()

    assert writer.error is None and writer.frames_written == 60
    probe = ffprobe(tmp_path / "vp8.mp4")
    assert probe["streams"][0]["codec_name"] == "h264"
    assert duration(probe) == pytest.approx(2.0, abs=0.15)
    assert decodes_cleanly(tmp_path / "vp8.mp4")
    with av.open(str(tmp_path / "vp8.mp4")) as container:
        picture = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert np.abs(picture[120, 200].astype(int) - (30, 200, 30)).max() < 25


async def test_a_file_cut_short_still_decodes_up_to_near_the_cut(tmp_path: Path) -> None:
    clock = RecordingClock.start(monotonic=T0, wall=0.0)
    camera = Publisher(H264, TrackSource.CAMERA)
    writer = writer_for(camera, tmp_path / "whole.mp4", clock)
    send_video(camera, T0, 4.0)
    await writer.aclose()

    data = (tmp_path / "whole.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"  # what SIGKILL leaves: bytes up to some point, no trailer
    cut.write_bytes(data[: int(len(data) * 0.7)])
    # Whole fragments of at most 1 s: everything before the broken last one decodes.
    assert frame_count(cut) >= 0.7 * 120 - FPS - 5
    assert decodes(cut)


async def test_loss_leaves_a_gap_not_corruption(tmp_path: Path) -> None:
    clock = RecordingClock.start(monotonic=T0, wall=0.0)
    camera = Publisher(H264, TrackSource.CAMERA)
    microphone = Publisher(OPUS, TrackSource.MICROPHONE)
    video = writer_for(camera, tmp_path / "camera.mp4", clock)
    audio = writer_for(microphone, tmp_path / "microphone.mp4", clock)

    def lose(number: int) -> bool:  # 50 packets mid-stream (of ~400 video, 150 audio)
        return 60 <= number < 110

    send_video(camera, T0, 3.0, size=(640, 360), lose=lose)
    send_audio(microphone, T0, 3.0, lose=lose)
    await video.aclose()
    await audio.aclose()

    assert video.error is None and audio.error is None
    # The picture stops at the loss and resumes at the keyframe the recorder asked for.
    assert camera.producer.keyframe_requests_sent >= 2  # at the start, after the loss
    assert 30 < video.frames_written < 90 and video.frames_dropped > 0
    assert audio.frames_written == 100
    for name in ("camera.mp4", "microphone.mp4"):
        assert decodes_cleanly(tmp_path / name), name
        assert duration(ffprobe(tmp_path / name)) == pytest.approx(3.0, abs=0.15)


class FailingFile:
    """A file on a disk that fills up after ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> int:
        if len(self.data) + len(data) > self.limit:
            raise OSError(28, "No space left on device")
        self.data += data
        return len(data)

    def close(self) -> None:
        self.closed = True


async def test_a_write_error_stops_the_writer_without_raising(tmp_path: Path) -> None:
    clock = RecordingClock.start(monotonic=T0, wall=0.0)
    camera = Publisher(H264, TrackSource.CAMERA)
    output = FailingFile(20_000)
    errors: list[TrackWriter] = []
    writer = TrackWriter(H264, output, clock, keyframes=camera.producer, on_error=errors.append)
    camera.producer.add_sink(writer)
    send_video(camera, T0, 3.0, size=(640, 360))
    await writer.aclose()  # never raises

    assert writer.error is not None and "No space left" in writer.error
    assert errors == [writer] and output.closed
    written = writer.frames_written
    send_video(camera, T0 + 3.0, 0.5)  # a stopped writer ignores packets
    assert writer.frames_written == written
