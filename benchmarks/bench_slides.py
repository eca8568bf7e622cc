"""Server-rendered slides: render and keyframe cost per document type, and what an idle slide costs.

Run with ``python benchmarks/bench_slides.py`` (options: ``--seconds 10``, ``--rounds 5``).

1. **Render**: a document of each type, made here, rendered into a 1920x1080 frame by the
   renderer's ``render_page`` in this process (best of ``--rounds``), with ``load`` (validation
   plus a thumbnail decode of page 1) timed apart.
2. **Keyframe**: each rendered page encoded as a VP8 keyframe with the slide track's encoder
   settings (fixed quantiser) on a warm encoder, ms and bytes, and its PSNR against the page
   after decoding. The RGB to I420 conversion (~15 ms at 1080p) is not included. For
   comparison, aiortc's ``Vp8Encoder.encode`` asked for 2.5 Mbit/s (it clamps to 1.5 Mbit/s).
3. **Idle slide**: one ``SlideTrack`` at 1920x1080 feeding a real ``Producer`` (no subscribers)
   for ``--seconds`` of refresh frames after its keyframe: process CPU time / wall time, as % of
   one core. Baseline: what a video track showing the same page at 30 fps costs, i.e.
   ``av.VideoFrame.from_ndarray`` + ``Vp8Encoder.encode`` per frame, 30 frames per second.

4. **Page turn**: what the server waits for when a presenter turns a page, before and after
   rendering moved to the sandbox: ``render_page`` in the event loop's default executor (in
   process, as before) against ``Document.render_page`` through a real :class:`Sandbox` (a job
   over a pipe, the page back through shared memory, the document already parsed in the child).
   Median wall time per turn over ``--turns``, and the server process's own CPU per turn (in
   process that is the render; with the sandbox only the hand-over, the render's CPU is the
   child's).

Figures are printed for reading, never asserted on.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
from collections.abc import Callable
from fractions import Fraction
from functools import partial

import av
import numpy as np
import numpy.typing as npt
import pydicom
from aiortc.codecs import Vp8Decoder, Vp8Encoder
from aiortc.codecs.vpx import vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from mcu.media import CodecInfo, TrackSource
from mcu.sfu.producer import Producer
from mcu.slides.documents import DocumentLimits, load_document
from mcu.slides.renderer import LoadedDocument, load
from mcu.slides.sandbox import Sandbox
from mcu.slides.slidetrack import NOMINAL_BITRATE, SlideTrack, _open_codec, _to_video_frame

BOX = (1920, 1080)
VP8 = CodecInfo("video/VP8", 90000)
Page = npt.NDArray[np.uint8]


# --- documents --------------------------------------------------------------------------------


def report_image(width: int, height: int) -> Image.Image:
    """A screenshot of a lab report: dense small text and a bar chart."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(12, height // 60))
    step = max(14, height // 48)
    for line in range(int(height * 0.8) // step):
        draw.text(
            (width // 30, step + line * step),
            f"{line:02d}  Haemoglobin 13.{line % 10} g/dL   WBC {4 + line % 7}.{line % 9} x10^9/L"
            f"   Platelets {150 + 7 * line}   CRP {line % 12} mg/L   (ref 0-5)",
            fill="black",
            font=font,
        )
    for bar in range(12):
        top = int(height * (0.95 - 0.04 * (bar % 5 + 1)))
        left = int(width * (0.62 + 0.028 * bar))
        draw.rectangle((left, top, left + width // 45, int(height * 0.95)), fill=(40, 90, 200))
    return image


def photo_image(width: int, height: int) -> Image.Image:
    """A photograph-like picture (wound photo, dermatology): smooth shading plus sensor noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 128 + 60 * np.sin(x / 311) * np.cos(y / 197)
    noise = np.random.default_rng(7).normal(0, 6, (height, width, 3))
    rgb = np.stack([base + 40, base, base * 0.8], axis=-1) + noise
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def text_pdf(pages: int = 3, size: tuple[int, int] = (960, 540)) -> bytes:
    """A slide deck with real vector text (Helvetica) and filled shapes, 16:9 pages."""
    width, height = size
    contents = []
    for number in range(pages):
        ops = [f"BT /F1 30 Tf 48 {height - 64} Td (Discharge summary, slide {number + 1}) Tj ET"]
        for line in range(26):
            text = f"{line:02d} Creatinine 8{line % 10} umol/L  eGFR {60 + line} mL/min  K 4.{line}"
            ops.append(f"BT /F1 11 Tf 48 {height - 100 - 15 * line} Td ({text}) Tj ET")
        for bar in range(8):
            ops.append(f"0.1 0.3 0.8 rg {600 + 36 * bar} 60 24 {40 + 25 * (bar % 5)} re f")
        contents.append("\n".join(ops).encode())
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    kids = []
    for index, content in enumerate(contents):
        page_id, content_id = 4 + 2 * index, 5 + 2 * index
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>"
        ).encode()
        objects[content_id] = (
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"
        )
        kids.append(f"{page_id} 0 R")
    objects[2] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref, count = len(out), max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % count
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, count))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (count, xref)
    return bytes(out)


def dicom_file(
    pixels: npt.NDArray[np.integer], photometric: str, bits: int, **attrs: object
) -> bytes:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.set_pixel_data(pixels, photometric, bits)
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ct_slice() -> bytes:
    """A 512x512 CT slice: a body ellipse with organs, stored HU+1024, soft-tissue window."""
    y, x = np.mgrid[-256:256, -256:256].astype(np.float32)
    hu = np.full((512, 512), -1000.0, dtype=np.float32)
    hu[(x / 220) ** 2 + (y / 160) ** 2 < 1] = 40
    hu[((x + 80) / 50) ** 2 + (y / 70) ** 2 < 1] = 60
    hu[((x - 90) / 40) ** 2 + ((y + 20) / 40) ** 2 < 1] = -600
    hu[(x / 20) ** 2 + ((y - 110) / 20) ** 2 < 1] = 900
    hu += np.random.default_rng(3).normal(0, 12, hu.shape).astype(np.float32)
    stored = np.clip(hu + 1024, 0, 4095).astype(np.uint16)
    return dicom_file(
        stored, "MONOCHROME2", 12, RescaleIntercept=-1024, RescaleSlope=1,
        WindowCenter=40, WindowWidth=400,
    )  # fmt: skip


def radiograph() -> bytes:
    """A 2500x3000 chest radiograph-like image, MONOCHROME1, 12 bits, no window (min-max)."""
    y, x = np.mgrid[0:3000, 0:2500].astype(np.float32)
    values = 2000 + 1200 * np.sin(x / 400) * np.sin(y / 500) + 300 * np.cos(x / 37)
    return dicom_file(np.clip(values, 0, 4095).astype(np.uint16), "MONOCHROME1", 12)


def documents() -> list[tuple[str, bytes]]:
    png = io.BytesIO()
    report_image(2560, 1440).save(png, "PNG")
    jpeg = io.BytesIO()
    photo_image(4032, 3024).save(jpeg, "JPEG", quality=90)
    return [
        ("PNG 2560x1440 report", png.getvalue()),
        ("JPEG 4032x3024 photo", jpeg.getvalue()),
        ("PDF 960x540pt vector text", text_pdf()),
        ("DICOM CT 512x512 windowed", ct_slice()),
        ("DICOM CR 2500x3000 MONO1", radiograph()),
    ]


# --- measuring ----------------------------------------------------------------------------------


def best_ms(function: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def psnr(a: Page, b: Page) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * float(np.log10(255**2 / mse))


def decode_vp8(payloads: list[bytes]) -> Page:
    data = b"".join(vp8_depayload(payload) for payload in payloads)
    (frame,) = Vp8Decoder().decode(JitterFrame(data=data, timestamp=0))
    assert isinstance(frame, av.VideoFrame)
    rgb: Page = frame.to_ndarray(format="rgb24")
    return rgb


def slide_keyframe(page: Page) -> tuple[float, list[bytes]]:
    """Our path: fixed-quantiser libvpx, aiortc's packetiser. Returns (ms, RTP payloads)."""
    context = _open_codec("video/vp8", BOX)
    packetizer = Vp8Encoder()
    frame = _to_video_frame(page)
    frame.time_base = Fraction(1, 90000)
    frame.pict_type = av.video.frame.PictureType.I
    frame.pts = 0
    context.encode(frame)  # the encoder's set-up happens once per track, not per page
    frame.pts = 90000
    start = time.perf_counter()
    payloads = [p for packet in context.encode(frame) for p in packetizer.pack(packet)[0]]
    return (time.perf_counter() - start) * 1000, payloads


def aiortc_keyframe(page: Page) -> tuple[float, list[bytes]]:
    """aiortc's own VP8 encoder, asked for NOMINAL_BITRATE (it clamps to 1.5 Mbit/s)."""
    encoder = Vp8Encoder()
    encoder.target_bitrate = NOMINAL_BITRATE
    frame = av.VideoFrame.from_ndarray(page, format="rgb24")
    frame.pts, frame.time_base = 0, Fraction(1, 90000)
    start = time.perf_counter()
    payloads, _ = encoder.encode(frame, force_keyframe=True)
    return (time.perf_counter() - start) * 1000, payloads


def render_table(rounds: int) -> list[tuple[str, Page]]:
    print(f"Render into {BOX[0]}x{BOX[1]} (best of {rounds}) and encode as a VP8 keyframe")
    print(
        f"{'document':28} {'bytes':>9} {'load ms':>8} {'render ms':>9} | {'key ms':>6} "
        f"{'key kB':>7} {'PSNR':>5} | {'aiortc kB':>9} {'PSNR':>5}"
    )
    pages = []
    for name, data in documents():
        load_ms = best_ms(lambda data=data: load(data), rounds)  # type: ignore[misc]
        document: LoadedDocument = load(data)
        render = best_ms(lambda document=document: document.render_page(0, BOX), rounds)  # type: ignore[misc]
        page = document.render_page(0, BOX)
        key_ms, key = min((slide_keyframe(page) for _ in range(rounds)), key=lambda r: r[0])
        _, theirs = aiortc_keyframe(page)
        print(
            f"{name:28} {len(data):9d} {load_ms:8.1f} {render:9.1f} | {key_ms:6.1f} "
            f"{sum(map(len, key)) / 1000:7.1f} {psnr(decode_vp8(key), page):5.1f} | "
            f"{sum(map(len, theirs)) / 1000:9.1f} {psnr(decode_vp8(theirs), page):5.1f}"
        )
        pages.append((name, page))
        document.close()
    return pages


async def idle_slide_cpu(page: Page, seconds: float) -> tuple[float, int, float]:
    """CPU % of one core of an unchanged slide, refresh frames sent, mean refresh bytes."""
    producer = Producer("slides", "bench", TrackSource.CONTENT, VP8, lambda: None)
    track = SlideTrack(producer, VP8, BOX)
    producer.send_keyframe_request = track.request_keyframe
    track.start()
    await track.show(page)
    await asyncio.sleep(1.5)  # the keyframe, its follow-ups and a refresh: steady state only
    frames, sent = track.frames_sent, track.bytes_sent
    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    refreshes = track.frames_sent - frames
    mean_bytes = (track.bytes_sent - sent) / max(1, refreshes)
    await track.stop()
    producer.close()
    return 100 * cpu / wall, refreshes, mean_bytes


def video_track_cpu(page: Page, frames: int) -> float:
    """CPU % of one core to send ``page`` as 30 fps video the plain aiortc way."""
    encoder = Vp8Encoder()
    encoder.target_bitrate = NOMINAL_BITRATE
    start = time.process_time()
    for number in range(frames):
        frame = av.VideoFrame.from_ndarray(page, format="rgb24")
        frame.pts, frame.time_base = number * 3000, Fraction(1, 90000)
        encoder.encode(frame)
    per_frame = (time.process_time() - start) / frames
    return 100 * per_frame * 30


async def page_turns(turns: int) -> None:
    """Median ms per page turn and server CPU ms per turn, in process and through the sandbox."""
    print(f"Page turn into {BOX[0]}x{BOX[1]}, median of {turns}")
    print(f"{'document':28} {'in process ms':>13} {'CPU ms':>7} | {'sandbox ms':>10} {'CPU ms':>7}")
    loop = asyncio.get_running_loop()
    sandbox = Sandbox()
    try:
        for name, data in documents():
            local = load(data)
            remote = await load_document(data, DocumentLimits(), sandbox)
            await remote.render_page(0, BOX)  # the child has it parsed from now on
            figures = []
            in_process = partial(loop.run_in_executor, None, local.render_page, 0, BOX)
            for render in (in_process, partial(remote.render_page, 0, BOX)):
                walls = []
                cpu = time.process_time()
                for _ in range(turns):
                    start = time.perf_counter()
                    await render()
                    walls.append(time.perf_counter() - start)
                figures += [
                    1000 * statistics.median(walls),
                    1000 * (time.process_time() - cpu) / turns,
                ]
            print(
                f"{name:28} {figures[0]:13.1f} {figures[1]:7.1f} | "
                f"{figures[2]:10.1f} {figures[3]:7.1f}"
            )
            local.close()
            remote.close()
    finally:
        await sandbox.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="idle slide measurement")
    parser.add_argument("--rounds", type=int, default=5, help="best-of for timings")
    parser.add_argument("--turns", type=int, default=20, help="page turns per document")
    args = parser.parse_args()
    pages = render_table(args.rounds)
    print()
    name, page = next(p for p in pages if p[0].startswith("PDF"))
    cpu, refreshes, mean_bytes = asyncio.run(idle_slide_cpu(page, args.seconds))
    baseline = statistics.median(video_track_cpu(page, 30) for _ in range(3))
    print(f"Idle slide at {BOX[0]}x{BOX[1]} ({name}), {args.seconds:.0f} s of refresh frames")
    print(f"  slide track:          {cpu:6.2f} % of one core, {refreshes} refreshes, "
          f"{mean_bytes:.0f} B each")  # fmt: skip
    print(f"  baseline 30 fps video:{baseline:6.1f} % of one core (from_ndarray + encode)")
    print(f"  ratio baseline/slide: {baseline / max(cpu, 1e-9):6.0f}x")
    print()
    asyncio.run(page_turns(args.turns))


if __name__ == "__main__":
    main()
