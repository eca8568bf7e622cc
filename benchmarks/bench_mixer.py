"""MCU mixing on one core: a 3x3 composite at 1280x720 and a 16-party N-1 audio mix.

Run with ``python benchmarks/bench_mixer.py`` (options: ``--frames 150``, ``--rounds 3``,
``--core 0``, ``--vp8-cpu-used 16``). The process pins itself to one core, every codec runs with
one thread, and times are process CPU time, so the figures say what one core sustains.

Video, per composite frame (the median of ``--rounds``, each ``--frames`` long):

1. **decode**: one frame from each of 9 VP8 640x360 streams (synthetic moving pictures with sensor
   noise, pre-encoded here with libvpx at 800 kbit/s), with PyAV's ``libvpx`` decoder as aiortc's
   ``Vp8Decoder`` uses it, and FFmpeg's own ``vp8`` decoder for comparison;
2. **compose**: ``Compositor.compose`` of the 3x3 grid with names and a speaker border. Baseline:
   the plain way through RGB: ``to_ndarray("rgb24")``, Pillow resize and paste, Pillow text, then
   ``from_ndarray`` and a conversion back to yuv420p for the encoder;
3. **encode** 1280x720 at 1.5 Mbit/s, one thread: VP8 with aiortc's ``Vp8Encoder`` options
   (realtime, ``cpu-used -6``), VP8 with ``--vp8-cpu-used``, and H.264 (libx264 ultrafast,
   zerolatency), each with its bitrate and luma PSNR against the composed input;
4. **end to end**: decode 9 + compose + encode per output frame, in frames/s against the 30 fps
   a live 3x3 needs (headroom = fps / 30 - 1), ours and the RGB baseline.

Audio, per 20 ms frame: ``mix_minus`` for 16 parties (each receiver hears the 15 others) against
the 1 ms target, and a baseline that sums each receiver's 15 others separately (O(N^2)) and hard
clips; plus the whole audio tick around it for reference (16 Opus decodes, ``MonoResampler``,
the mix, 16 ``pcm_frame`` + Opus encodes).

Figures are printed for reading, never asserted on.
"""

from __future__ import annotations

import argparse
import fractions
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame
from PIL import Image, ImageDraw, ImageFont

from mcu.mixer.audio import FRAME_SAMPLES, MonoResampler, mix_minus, pcm_frame
from mcu.mixer.compositor import Compositor
from mcu.mixer.layout import LayoutInput, Tile, compute_layout

CANVAS = (1280, 720)
SOURCE = (640, 360)
STREAMS = 9
SOURCE_FRAMES = 60  # each stream loops over 2 s of video (one keyframe, 59 deltas)
SOURCE_BITRATE = 800_000
MIX_BITRATE = 1_500_000
NEED_FPS = 30
PARTIES = 16
AUDIO_TARGET_MS = 1.0
# aiortc's Vp8Encoder options (aiortc/codecs/vpx.py) at 1.5 Mbit/s.
AIORTC_VP8 = {
    "bufsize": str(MIX_BITRATE),
    "cpu-used": "-6",
    "deadline": "realtime",
    "lag-in-frames": "0",
    "minrate": str(MIX_BITRATE),
    "maxrate": str(MIX_BITRATE),
    "noise-sensitivity": "4",
    "overshoot-pct": "15",
    "partitions": "0",
    "static-thresh": "1",
    "undershoot-pct": "100",
}
Frames = dict[str, av.VideoFrame | None]


# --- sources ----------------------------------------------------------------------------------


def source_pictures(index: int, count: int) -> list[av.VideoFrame]:
    """A talking-head-like picture: shaded background, a moving face-coloured blob, noise."""
    width, height = SOURCE
    rng = np.random.default_rng(index)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    hue = np.array([0.8 + 0.05 * index, 1.0, 1.2 - 0.05 * index], np.float32)
    # Sensor noise: a few fields drawn once and cycled (drawing it per frame dominates setup).
    noise = rng.normal(0, 3, (4, height, width, 3)).astype(np.float32)
    pictures = []
    for i in range(count):
        base = 110 + 50 * np.sin((x + 4 * i + 40 * index) / 80) * np.cos((y - 3 * i) / 60)
        rgb = base[..., None] * hue + noise[i % 4]
        cx, cy = width / 2 + 40 * np.sin(i / 9 + index), height / 2 + 15 * np.cos(i / 7)
        face = ((x - cx) / 90) ** 2 + ((y - cy) / 120) ** 2 < 1
        rgb[face] = np.array((225, 180, 150), np.float32) + 1.3 * noise[(i + 1) % 4][face]
        rgb8 = np.clip(rgb, 0, 255).astype(np.uint8)
        pictures.append(av.VideoFrame.from_ndarray(rgb8, format="rgb24").reformat(format="yuv420p"))
    return pictures


def video_encoder(name: str, size: tuple[int, int], bitrate: int, options: dict[str, str]) -> Any:
    codec: Any = av.CodecContext.create(name, "w")
    codec.width, codec.height = size
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, NEED_FPS)
    codec.framerate = fractions.Fraction(NEED_FPS, 1)
    codec.thread_count = 1
    codec.options = options
    return codec


def encode_streams() -> list[list[bytes]]:
    """9 VP8 640x360 streams, each a keyframe followed by deltas."""
    streams = []
    for index in range(STREAMS):
        options = AIORTC_VP8 | {
            "bufsize": str(SOURCE_BITRATE),
            "minrate": str(SOURCE_BITRATE),
            "maxrate": str(SOURCE_BITRATE),
        }
        encoder = video_encoder("libvpx", SOURCE, SOURCE_BITRATE, options)
        packets: list[bytes] = []
        for pts, picture in enumerate(source_pictures(index, SOURCE_FRAMES)):
            picture.pts = pts
            packets += [bytes(p) for p in encoder.encode(picture)]
        packets += [bytes(p) for p in encoder.encode(None)]
        streams.append(packets)
    return streams


class Decoders:
    """One decoder per stream, fed the streams in a loop (each loop starts on its keyframe)."""

    def __init__(self, streams: list[list[bytes]], codec: str) -> None:
        self.streams = streams
        self.codecs: list[Any] = []
        for _ in streams:
            context: Any = av.CodecContext.create(codec, "r")
            context.thread_count = 1
            self.codecs.append(context)
        self.position = 0

    def next(self) -> Frames:
        frames: Frames = {}
        for i, (codec, packets) in enumerate(zip(self.codecs, self.streams, strict=True)):
            decoded = codec.decode(av.Packet(packets[self.position % len(packets)]))
            frames[f"p{i}"] = decoded[-1] if decoded else None
        self.position += 1
        return frames


# --- compose: the RGB baseline ----------------------------------------------------------------


class RgbCompositor:
    """What composing looks like without yuv420p planes: RGB, Pillow, and back."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.font = ImageFont.load_default(size=18)

    def compose(
        self, tiles: Sequence[Tile], frames: Frames, *, highlight: str | None = None
    ) -> av.VideoFrame:
        canvas = Image.new("RGB", (self.width, self.height))
        draw = ImageDraw.Draw(canvas)
        for tile in tiles:
            frame = frames.get(tile.source_id)
            box = (tile.x, tile.y, tile.x + tile.width - 1, tile.y + tile.height - 1)
            if frame is None:
                draw.rectangle(box, fill=(56, 56, 56))
            else:
                picture = Image.fromarray(frame.to_ndarray(format="rgb24"))
                scale = min(tile.width / frame.width, tile.height / frame.height)
                size = (int(frame.width * scale), int(frame.height * scale))
                x = tile.x + (tile.width - size[0]) // 2
                y = tile.y + (tile.height - size[1]) // 2
                canvas.paste(picture.resize(size, Image.Resampling.BILINEAR), (x, y))
            if tile.source_id == highlight:
                draw.rectangle(box, outline=(46, 204, 113), width=4)
            left, top, right, bottom = draw.textbbox((0, 0), tile.label, font=self.font)
            tx, ty = tile.x + 8, tile.y + tile.height - 16 - (bottom - top)
            draw.rectangle(
                (tx, ty, tx + right - left + 8, ty + bottom - top + 8), fill=(30, 30, 30)
            )
            draw.text((tx + 4 - left, ty + 4 - top), tile.label, font=self.font, fill="white")
        rgb = av.VideoFrame.from_ndarray(np.asarray(canvas), format="rgb24")
        return rgb.reformat(format="yuv420p")


# --- measuring --------------------------------------------------------------------------------


def cpu_ms(run: Callable[[], object], count: int, rounds: int) -> float:
    """Median over ``rounds`` of process CPU ms per call of ``run``."""
    results = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(count):
            run()
        results.append((time.process_time() - start) * 1000 / count)
    return statistics.median(results)


def psnr(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 10 * math.log10(255**2 / max(mse, 1e-9))


class EncodeRun:
    """An encoder fed composed frames; remembers bytes and the pictures for PSNR."""

    def __init__(self, name: str, options: dict[str, str], decoder: str) -> None:
        self.codec = video_encoder(name, CANVAS, MIX_BITRATE, options)
        self.decoder_name = decoder
        self.pts = 0
        self.bytes = 0
        self.packets: list[bytes] = []
        self.inputs: list[npt.NDArray[np.uint8]] = []

    def encode(self, frame: av.VideoFrame, keep: bool = False) -> None:
        frame.pts = self.pts
        self.pts += 1
        for packet in self.codec.encode(frame):
            self.bytes += packet.size
            if keep:
                self.packets.append(bytes(packet))
        if keep:
            self.inputs.append(np.asarray(frame.to_ndarray()[: CANVAS[1]], np.uint8))

    def quality(self) -> tuple[float, float]:
        """(Mbit/s, luma PSNR dB) over what was encoded with ``keep``."""
        decoder: Any = av.CodecContext.create(self.decoder_name, "r")
        decoded = []
        for packet in self.packets:
            decoded += decoder.decode(av.Packet(packet))
        pairs = zip(self.inputs[-len(decoded) :], decoded, strict=False)
        scores = [psnr(a, f.to_ndarray()[: CANVAS[1]]) for a, f in pairs]
        mbits = self.bytes * 8 / (self.pts / NEED_FPS) / 1e6
        return mbits, statistics.mean(scores) if scores else float("nan")


def video(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    streams = encode_streams()
    mean_kbit = statistics.mean(sum(len(p) for p in s) * 8 / (len(s) / 30) / 1000 for s in streams)
    print(f"{STREAMS} VP8 {SOURCE[0]}x{SOURCE[1]} streams, {mean_kbit:.0f} kbit/s each, "
          f"made in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    names = ["Dr Ana Souza", "Ben Okafor", "Cai Lin", "Dana Weiss", "Eli Haddad", "Fatima Noor",
             "Gus Berg", "Hana Sato", "Ivo Petrov"]  # fmt: skip
    inputs = [LayoutInput(f"p{i}", names[i]) for i in range(STREAMS)]
    tiles = compute_layout("grid", inputs, CANVAS)
    n, rounds = args.frames, args.rounds

    # 1. decode
    libvpx, native = Decoders(streams, "libvpx"), Decoders(streams, "vp8")
    decode_ms = cpu_ms(libvpx.next, n, rounds)
    native_ms = cpu_ms(native.next, n, rounds)
    # 2. compose, over a fixed set of decoded frames
    frame_sets = [libvpx.next() for _ in range(SOURCE_FRAMES)]
    ours, rgb = Compositor(*CANVAS), RgbCompositor(*CANVAS)
    sets = iter(frame_sets * (n * rounds // SOURCE_FRAMES + 2))
    compose_ms = cpu_ms(lambda: ours.compose(tiles, next(sets), highlight="p4"), n, rounds)
    sets = iter(frame_sets * (n * rounds // SOURCE_FRAMES + 2))
    rgb_ms = cpu_ms(lambda: rgb.compose(tiles, next(sets), highlight="p4"), n, rounds)
    # 3. encode
    composed = [ours.compose(tiles, s, highlight="p4") for s in frame_sets]
    encoders = {
        "VP8, aiortc options (cpu-used -6)": ("libvpx", AIORTC_VP8, "libvpx"),
        f"VP8, cpu-used {args.vp8_cpu_used}": (
            "libvpx", AIORTC_VP8 | {"cpu-used": str(args.vp8_cpu_used)}, "libvpx",
        ),
        "H.264, x264 ultrafast zerolatency": (
            "libx264", {"preset": "ultrafast", "tune": "zerolatency"}, "h264",
        ),
    }  # fmt: skip
    encode_rows = []
    for label, (codec, options, decoder) in encoders.items():
        run = EncodeRun(codec, options, decoder)
        for frame in composed:  # warm up, and the frames PSNR is measured on
            run.encode(frame, keep=True)
        pictures = iter(composed * (n * rounds // SOURCE_FRAMES + 2))

        def encode_next(r: EncodeRun = run, p: Iterator[av.VideoFrame] = pictures) -> None:
            r.encode(next(p))

        ms = cpu_ms(encode_next, n, rounds)
        encode_rows.append((label, ms, *run.quality()))

    print(f"\nPer composite frame, {CANVAS[0]}x{CANVAS[1]} 3x3, CPU ms on one core "
          f"(median of {rounds} x {n} frames):")  # fmt: skip
    print(f"  decode 9x VP8 {SOURCE[0]}x{SOURCE[1]}, libvpx      {decode_ms:7.2f}")
    print(f"  decode 9x VP8, FFmpeg vp8 decoder        {native_ms:7.2f}"
          f"   ({decode_ms / native_ms:.1f}x faster than libvpx)")  # fmt: skip
    print(f"  compose (yuv420p planes, ours)           {compose_ms:7.2f}")
    print(f"  compose baseline (RGB + Pillow)          {rgb_ms:7.2f}"
          f"   ({rgb_ms / compose_ms:.1f}x ours)")  # fmt: skip
    for label, ms, mbits, db in encode_rows:
        print(f"  encode {label:34s}{ms:7.2f}   {mbits:.2f} Mbit/s, Y PSNR {db:.1f} dB")

    # 4. end to end
    print(f"\nEnd to end (decode 9 + compose + encode), frames/s on one core vs {NEED_FPS} fps:")
    rows = [
        ("ours, VP8 aiortc options", ours, "libvpx", AIORTC_VP8),
        (f"ours, VP8 cpu-used {args.vp8_cpu_used}", ours, "libvpx",
         AIORTC_VP8 | {"cpu-used": str(args.vp8_cpu_used)}),
        ("ours, H.264 ultrafast", ours, "libx264", {"preset": "ultrafast", "tune": "zerolatency"}),
        ("baseline RGB compose, VP8 aiortc", rgb, "libvpx", AIORTC_VP8),
    ]  # fmt: skip
    fps_by_row = {}
    for label, comp, codec, options in rows:
        decoders = Decoders(streams, "libvpx")
        run = EncodeRun(codec, options, "libvpx")

        def step(d: Decoders = decoders, c: Any = comp, r: EncodeRun = run) -> None:
            r.encode(c.compose(tiles, d.next(), highlight="p4"))

        ms = cpu_ms(step, n, rounds)
        fps = 1000 / ms
        fps_by_row[label] = fps
        print(f"  {label:36s}{fps:7.1f} fps  ({ms:5.1f} ms/frame)  headroom "
              f"{(fps / NEED_FPS - 1) * 100:+5.0f} %")  # fmt: skip
    first, last = rows[0][0], rows[-1][0]
    print(f"  ours / baseline: {fps_by_row[first] / fps_by_row[last]:.2f}x")


# --- audio ------------------------------------------------------------------------------------


def mix_each_receiver(
    frames: dict[str, np.ndarray], receivers: Sequence[str]
) -> dict[str, np.ndarray]:
    """Baseline: every receiver's N-1 sum made separately (O(N^2)), hard clipped."""
    out = {}
    for receiver in receivers:
        total = np.zeros(FRAME_SAMPLES, np.int32)
        for source, samples in frames.items():
            if source != receiver:
                total += samples
        out[receiver] = np.clip(total, -32768, 32767).astype(np.int16)
    return out


def audio(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(3)
    names = [f"p{i}" for i in range(PARTIES)]
    t = np.arange(FRAME_SAMPLES * 50) / 48000
    # Speech-like: a few harmonics and noise, each party at its own pitch; three of them loud.
    signals = {}
    for i, name in enumerate(names):
        pitch = 110 + 23 * i
        wave = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6))
        level = 9000 if i < 3 else 1500
        signals[name] = (level * wave / 2.3 + rng.normal(0, 200, t.size)).astype(np.int16)
    frame_sets = [
        {n: s[j * FRAME_SAMPLES : (j + 1) * FRAME_SAMPLES] for n, s in signals.items()}
        for j in range(50)
    ]
    count = args.frames * 20
    sets = iter(frame_sets * (count * args.rounds // 50 + 2))
    ours_ms = cpu_ms(lambda: mix_minus(next(sets), names), count, args.rounds)
    sets = iter(frame_sets * (count * args.rounds // 50 + 2))
    base_ms = cpu_ms(lambda: mix_each_receiver(next(sets), names), count, args.rounds)
    # Worst case: everyone shouting at once, the limiter working on every receiver's mix.
    loud = [{n: np.clip(s.astype(np.int32) * 3, -32768, 32767).astype(np.int16)
             for n, s in f.items()} for f in frame_sets]  # fmt: skip
    sets = iter(loud * (count * args.rounds // 50 + 2))
    loud_ms = cpu_ms(lambda: mix_minus(next(sets), names), count, args.rounds)

    # The whole tick around the mix, for reference: what the session does every 20 ms.
    encoders = {n: OpusEncoder() for n in names}
    packets: dict[str, list[bytes]] = {n: [] for n in names}
    for j, frames in enumerate(frame_sets):
        for n, samples in frames.items():
            packets[n] += encoders[n].encode(pcm_frame(samples, j * FRAME_SAMPLES))[0]
    decoders = {n: OpusDecoder() for n in names}
    resamplers = {n: MonoResampler() for n in names}
    out_encoders = {n: OpusEncoder() for n in names}
    position = [0]

    def tick() -> None:
        j = position[0]
        position[0] += 1
        mono: dict[str, np.ndarray] = {}
        for n in names:
            data = packets[n][j % len(packets[n])]
            for decoded in decoders[n].decode(JitterFrame(data=data, timestamp=j * 960)):
                for chunk in resamplers[n].to_mono_frames(decoded):
                    mono[n] = chunk
        for n, samples in mix_minus(mono, names).items():
            out_encoders[n].encode(pcm_frame(samples, j * FRAME_SAMPLES))

    tick_ms = cpu_ms(tick, count // 4, args.rounds)
    print(f"\nAudio, {PARTIES} parties, CPU ms per 20 ms frame on one core:")
    under = AUDIO_TARGET_MS / ours_ms
    print(f"  mix_minus (ours, O(N), soft limit)       {ours_ms:7.3f}"
          f"   target {AUDIO_TARGET_MS:.1f} ms: {under:.0f}x under")  # fmt: skip
    print(f"  mix_minus, all 16 loud (limiter active)  {loud_ms:7.3f}")
    print(f"  baseline per receiver (O(N^2), clip)     {base_ms:7.3f}"
          f"   ({base_ms / ours_ms:.1f}x ours)")  # fmt: skip
    print(f"  whole tick: 16 Opus decode + to_mono + mix + 16 Opus encode {tick_ms:6.2f}"
          f"   ({tick_ms / 20 * 100:.0f} % of one core)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=150, help="composite frames per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is printed")
    parser.add_argument("--core", type=int, default=0, help="the one core to run on")
    parser.add_argument("--vp8-cpu-used", type=int, default=16, help="the faster VP8 setting")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"pinned to core {args.core}; PyAV {av.__version__}, libvpx/x264 with 1 thread")
    video(args)
    audio(args)


if __name__ == "__main__":
    main()
