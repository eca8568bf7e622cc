"""Recording: CPU per recorded stream, and how fast the composite renders.

Run with ``python benchmarks/bench_recorder.py`` (options: ``--seconds 10``, ``--core 0``). The
process pins itself to one core; times are process CPU time (every thread), so "% of a core" is
CPU seconds per second of media.

1. **H.264 copy**: 1280x720 at 30 fps and ~1.5 Mbit/s (synthetic pictures with noise, pre-encoded
   with aiortc's ``H264Encoder``), fed through a ``Producer`` into a ``TrackWriter`` writing a
   fragmented MP4 to disk: packet handling on the loop, access-unit assembly, muxing and file I/O
   in the writer's thread. Baseline, same run: decoding the same access units and re-encoding
   them with libx264 (veryfast, zerolatency), i.e. what recording without copying would cost.
2. **VP8 transcode**: the same pictures at 640x360 and 1280x720, VP8 from aiortc's ``Vp8Encoder``,
   decoded and re-encoded to H.264 by the writer.
3. **Opus copy**: 20 ms packets from aiortc's ``OpusEncoder``.
4. **Composite**: ``make_composite`` of 4 camera tracks (H.264 640x360) and 4 microphones at
   1280x720, 25 fps: seconds of media rendered per wall second (x real time) and per CPU second.

Figures are printed for reading, never asserted on.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder

from mcu.codecs.h264 import H264Depacketizer
from mcu.media import CodecInfo, TrackSource
from mcu.recorder.composite import RecordedTrack, make_composite
from mcu.recorder.timeline import RecordingClock
from mcu.recorder.writer import TrackWriter
from mcu.sfu.producer import Producer

FPS = 30
BITRATE = 1_500_000
H264 = CodecInfo("video/H264", 90000, None, (("packetization-mode", "1"),))
VP8 = CodecInfo("video/VP8", 90000)
OPUS = CodecInfo("audio/opus", 48000, 2)
Packets = list[tuple[int, int, bool, bytes, float]]
"(sequence, timestamp, marker, payload, arrival)"


def picture(index: int, size: tuple[int, int], rgb: tuple[int, int, int]) -> av.VideoFrame:
    width, height = size
    image = np.empty((height, width, 3), np.uint8)
    image[...] = rgb
    rng = np.random.default_rng(index)
    # A moving gradient with sensor-like noise: enough detail to use the bitrate.
    ramp = (np.arange(width) + index * 4) % 256
    image[:, :, 1] = ramp[None, :].astype(np.uint8)
    image += rng.integers(0, 12, image.shape, dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    frame.pts = index * (90000 // FPS)
    frame.time_base = fractions.Fraction(1, 90000)
    return frame


def encode_video(encoder: Any, seconds: float, size: tuple[int, int], rgb=(180, 60, 60)) -> Packets:
    encoder.target_bitrate = BITRATE
    packets: Packets = []
    sequence = 0
    for i in range(round(seconds * FPS)):
        payloads, timestamp = encoder.encode(picture(i, size, rgb), i % (2 * FPS) == 0)
        for j, payload in enumerate(payloads):
            packets.append((sequence & 0xFFFF, timestamp, j == len(payloads) - 1, payload, i / FPS))
            sequence += 1
    return packets


def encode_audio(seconds: float, hz: float = 440.0) -> Packets:
    encoder = OpusEncoder()
    packets: Packets = []
    for i in range(round(seconds * 50)):
        t = (np.arange(960) + i * 960) / 48000
        samples = (np.sin(2 * np.pi * hz * t) * 6000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, i * 960
        frame.time_base = fractions.Fraction(1, 48000)
        payloads, timestamp = encoder.encode(frame)
        for payload in payloads:
            packets.append((i & 0xFFFF, timestamp, True, payload, i * 0.02))
    return packets


async def record(
    codec: CodecInfo, packets: Packets, path: Path, clock: RecordingClock, offset: float = 0.0
) -> TrackWriter:
    source = TrackSource.MICROPHONE if codec.kind == "audio" else TrackSource.CAMERA
    producer = Producer("t", "p", source, codec, lambda: None)
    writer = TrackWriter(codec, path.open("wb"), clock, keyframes=producer, name=path.stem)
    producer.add_sink(writer)
    base = clock.monotonic_start + offset
    for sequence, timestamp, marker, payload, arrival in packets:
        producer.on_rtp(sequence, timestamp, marker, payload, None, base + arrival)
        if sequence % 64 == 0:
            await asyncio.sleep(0)  # let the writer's thread run alongside, as live
    await writer.aclose()
    assert writer.error is None, writer.error
    return writer


def cpu_of_recording(codec: CodecInfo, packets: Packets, seconds: float, folder: Path) -> float:
    """Percent of a core per recorded stream."""
    clock = RecordingClock.start()
    start = time.process_time()
    writer = asyncio.run(record(codec, packets, folder / f"{codec.mime_type[6:]}.mp4", clock))
    cpu = time.process_time() - start
    assert writer.frames_written > 0
    return 100 * cpu / seconds


def cpu_of_h264_reencode(packets: Packets, seconds: float) -> float:
    depacketizer = H264Depacketizer()
    decoder = av.CodecContext.create("h264", "r")
    encoder = av.CodecContext.create("libx264", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.options = {"preset": "veryfast", "tune": "zerolatency"}
    encoder.time_base = fractions.Fraction(1, 90000)
    encoder.bit_rate = BITRATE
    opened = False
    start = time.process_time()
    for sequence, timestamp, marker, payload, _ in packets:
        unit = depacketizer.push(payload, marker, sequence)
        if unit is None:
            continue
        for frame in decoder.decode(av.Packet(unit)):
            assert isinstance(frame, av.VideoFrame)
            if not opened:
                encoder.width, encoder.height, encoder.pix_fmt = (
                    frame.width,
                    frame.height,
                    "yuv420p",
                )
                opened = True
            frame.pts, frame.time_base = timestamp, encoder.time_base
            encoder.encode(frame)
    encoder.encode(None)
    return 100 * (time.process_time() - start) / seconds


def composite_speed(seconds: float, folder: Path) -> tuple[float, float]:
    clock = RecordingClock.start()
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]
    tracks: list[RecordedTrack] = []

    async def record_all() -> None:
        for i, rgb in enumerate(colours):
            name = f"person {i}"
            video = encode_video(H264Encoder(), seconds, (640, 360), rgb)
            camera = folder / f"camera{i}.mp4"
            mic = folder / f"mic{i}.mp4"
            await record(H264, video, camera, clock, offset=0.0)
            await record(OPUS, encode_audio(seconds, 300 + 100 * i), mic, clock)
            tracks.append(RecordedTrack(camera, "video", "camera", name, 0.0))
            tracks.append(RecordedTrack(mic, "audio", "microphone", name, 0.0))

    asyncio.run(record_all())
    wall, cpu = time.perf_counter(), time.process_time()
    make_composite(tracks, folder / "composite.mp4", size=(1280, 720), fps=25)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return seconds / wall, seconds / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--core", type=int, default=0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    seconds = args.seconds
    print(f"python {sys.version.split()[0]}, PyAV {av.__version__}, {seconds:g} s of media each")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        h264 = encode_video(H264Encoder(), seconds, (1280, 720))
        kbps = sum(len(p[3]) for p in h264) * 8 / seconds / 1000
        print(f"\nH.264 1280x720 {FPS} fps, {kbps:.0f} kbit/s, {len(h264)} packets")
        copy = cpu_of_recording(H264, h264, seconds, folder)
        reencode = cpu_of_h264_reencode(h264, seconds)
        ratio = reencode / copy
        print(f"  copy (TrackWriter)               {copy:6.2f} % of a core   (target <= 2 %)")
        print(f"  baseline: decode + x264 veryfast {reencode:6.2f} % of a core   ({ratio:.0f}x)")
        for size in ((640, 360), (1280, 720)):
            vp8 = encode_video(Vp8Encoder(), seconds, size)
            kbps = sum(len(p[3]) for p in vp8) * 8 / seconds / 1000
            cpu = cpu_of_recording(VP8, vp8, seconds, folder)
            label = f"VP8 {size[0]}x{size[1]} {kbps:.0f} kbit/s -> H.264 (TrackWriter)"
            print(f"{label:42} {cpu:6.2f} % of a core")
        opus = encode_audio(seconds)
        cpu = cpu_of_recording(OPUS, opus, seconds, folder)
        print(f"{'Opus copy (TrackWriter)':42} {cpu:6.2f} % of a core")
        real_time, per_cpu = composite_speed(seconds, folder)
        print(
            f"\ncomposite 4 cameras 640x360 + 4 microphones -> 1280x720 25 fps H.264 + AAC:"
            f" {real_time:.1f}x real time (wall), {per_cpu:.1f}x per CPU second"
        )


if __name__ == "__main__":
    main()
