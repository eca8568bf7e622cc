"""A content track the server renders itself: slide pages encoded once and fed to a Producer.

The presenter pages through a document over the socket; :class:`SlideTrack` encodes the current
page and hands its RTP payloads to an ordinary :class:`~mcu.sfu.producer.Producer`, so consumers,
NACK repair and keyframe coalescing work as for any published track.

A slide is a still picture, which live video encoders are not tuned for. aiortc's ``Vp8Encoder``
runs libvpx in CBR mode and caps its target at 1.5 Mbit/s: at 1920x1080 its first keyframe of a
page of text comes out blurred (PSNR ~30 dB) and it then spends its whole per-second budget
refining the picture in 30-150 kB delta frames. Here libvpx (or libx264) runs at a fixed
quantiser instead: every keyframe of a page is equally sharp (PSNR ~45 dB on dense text), and
an unchanged page costs a ~200-byte refresh frame a second. Every keyframe is followed at once by
a few such small frames (:mod:`mcu.slides.slideschedule` says when and why): receivers that show a
frame only when the next one begins would otherwise show a new page a second late. aiortc still does
the RTP packetisation (``Encoder.pack``), so the payloads are exactly what its own senders produce.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import time
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt
from aiortc import RTCRtpCodecParameters
from aiortc.codecs import get_encoder
from aiortc.codecs.base import Encoder
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType

from mcu.media import CodecInfo
from mcu.sfu.producer import Producer
from mcu.slides.slideschedule import SlideSchedule

logger = logging.getLogger(__name__)

VP8_QUANTIZER = 10
"libvpx quantiser (0-63) of every slide frame: small text at 1080p stays sharp."
H264_QP = 20
"libx264 QP (0-51) of every slide frame, chosen for the same sharpness as ``VP8_QUANTIZER``."
NOMINAL_BITRATE = 2_500_000
"Bitrate the encoders are configured with; with a fixed quantiser it does not limit frame size."

_CLOCK_RATE = 90_000
_TIME_BASE = Fraction(1, _CLOCK_RATE)
_NEVER = 1 << 30  # keyframe interval: keyframes only when a page changes or a viewer asks


def _open_codec(mime_type: str, size: tuple[int, int]) -> VideoCodecContext:
    """An encoder for still pictures: fixed quantiser, no lookahead, skips unchanged blocks."""
    name = mime_type.lower()
    if name == "video/vp8":
        context = CodecContext.create("libvpx", "w")
        context.qmin = context.qmax = VP8_QUANTIZER
        context.options = {
            "deadline": "realtime",
            "cpu-used": "-6",
            "lag-in-frames": "0",
            # Blocks that did not change are skipped outright: refresh frames are ~200 bytes.
            # Pages always change on a keyframe, so no real change is ever skipped.
            "static-thresh": "10000",
            "noise-sensitivity": "0",
            "max-intra-rate": "0",  # a keyframe may take what it needs to be sharp
        }
    elif name == "video/h264":
        context = CodecContext.create("libx264", "w")
        context.options = {
            "preset": "veryfast",
            "tune": "stillimage,zerolatency",
            "profile": "baseline",  # constrained baseline decodes under any negotiated profile
            "qp": str(H264_QP),
            "forced-idr": "1",
        }
        context.framerate = Fraction(30, 1)  # x264 picks the level from it
    else:
        raise ValueError(f"slides cannot be encoded as {mime_type}")
    width, height = size
    context.width = width
    context.height = height
    context.pix_fmt = "yuv420p"
    context.time_base = _TIME_BASE
    context.bit_rate = NOMINAL_BITRATE
    context.gop_size = _NEVER
    # One thread: with a single VP8 token partition more threads barely speed up a keyframe
    # (1080p: 33 vs 38 ms), and their spin-waits multiplied an idle slide's CPU by 2-12x.
    context.thread_count = 1
    return context


def _to_video_frame(image: npt.NDArray[np.uint8]) -> av.VideoFrame:
    """Convert an RGB page once; every frame of the page reuses the result."""
    rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    return rgb.reformat(format="yuv420p")


class SlideTrack:
    """Feeds a producer with RTP packets of the page on show.

    ``show`` sends the new page as a keyframe at once; ``request_keyframe`` (the producer's
    keyframe callback, which it rate-limits) sends the page as a keyframe again. Each keyframe is
    followed by a few small follow-up frames within half a second, then, while the page is
    unchanged, by one small refresh frame a second
    (:class:`~mcu.slides.slideschedule.SlideSchedule`; the follow-ups let receivers that wait for
    the next frame show the page). Encoding runs in ``executor`` (the loop's default when None),
    never on the event loop. The producer is the caller's: ``stop`` stops feeding it but does not
    close it, and lets go of the encoder (~80 MB at 1080p) at once. Wiring::

        producer = Producer(track_id, presenter_id, TrackSource.CONTENT, codec, lambda: None)
        track = SlideTrack(producer, codec)
        producer.send_keyframe_request = track.request_keyframe
        track.start()
        await track.show(document.render_page(0))

    (``ContentChannel`` routes the producer's requests through itself instead, so that the
    producer, which consumers may hold after the show, never keeps the track alive.)
    """

    def __init__(
        self,
        producer: Producer,
        codec: CodecInfo,
        size: tuple[int, int] = (1920, 1080),
        *,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        if size[0] < 2 or size[1] < 2 or size[0] % 2 or size[1] % 2:
            raise ValueError(f"frame size {size} must be even (4:2:0 chroma)")
        self.producer = producer
        self.codec = codec
        self.size = size
        self.frames_sent = 0
        self.keyframes_sent = 0
        self.bytes_sent = 0
        "Payload bytes handed to the producer."
        self.last_keyframe_bytes = 0
        "Payload bytes of the latest keyframe."
        parameters = RTCRtpCodecParameters(
            mimeType=codec.mime_type,
            clockRate=codec.clock_rate,
            parameters=dict(codec.parameters),
        )
        self._context: VideoCodecContext | None = _open_codec(codec.mime_type, size)
        # aiortc's encoder object is used only to packetise what our codec context encodes.
        self._packetizer: Encoder = get_encoder(parameters)
        self._executor = executor
        self._frame: av.VideoFrame | None = None
        self._page_generation = 0
        self._keyframe_due = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._encoding: asyncio.Future[tuple[list[bytes], int]] | None = None
        self._sequence = random.getrandbits(16)
        self._epoch = time.monotonic()
        self._last_pts = -1

    def start(self) -> None:
        """Start sending (the current page, if any, goes out at once as a keyframe)."""
        if self._task is None:
            if self._context is None:
                self._context = _open_codec(self.codec.mime_type, self.size)
            self._keyframe_due = True
            self._wake.set()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop sending and let go of the encoder (``start`` opens a new one); returns once no
        encode is running. The producer is left open."""
        task, self._task = self._task, None
        if task is not None:
            # Asked to end, not cancelled: a cancelled task keeps its CancelledError, whose
            # traceback holds the task's frames and so this track, in a reference cycle that
            # only a full collection frees (rare on a busy server). An encode under way
            # finishes first, so the codec is never used by two threads.
            self._stopping = True
            self._wake.set()
            try:
                await task
            finally:
                self._stopping = False
        if self._encoding is not None:
            with contextlib.suppress(Exception):
                await self._encoding
            self._encoding = None
        # A 1080p VP8 encoder holds ~80 MB: released now, whoever still refers to the track.
        self._context = None

    async def show(self, image: npt.NDArray[np.uint8]) -> None:
        """Make ``image`` (RGB uint8, exactly ``size``) the current page, sent as a keyframe."""
        width, height = self.size
        if image.shape != (height, width, 3) or image.dtype != np.uint8:
            raise ValueError(
                f"a page must be a {height}x{width}x3 uint8 array, not {image.shape} {image.dtype}"
            )
        self._page_generation += 1
        generation = self._page_generation
        loop = asyncio.get_running_loop()
        frame = await loop.run_in_executor(self._executor, _to_video_frame, image)
        if generation != self._page_generation:
            return  # a later show() overtook this one
        self._frame = frame
        self._keyframe_due = True
        self._wake.set()

    def request_keyframe(self) -> None:
        """Send the current page as a keyframe now (a viewer joined or lost a picture)."""
        self._keyframe_due = True
        self._wake.set()

    async def _run(self) -> None:
        schedule = SlideSchedule()
        while not self._stopping:
            delay = schedule.delay(time.monotonic())
            if self._frame is None:
                await self._wake.wait()
            elif delay > 0 and not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
            self._wake.clear()
            frame = self._frame
            if frame is None or self._stopping:
                continue
            keyframe, self._keyframe_due = self._keyframe_due, False
            encoding = asyncio.get_running_loop().run_in_executor(
                self._executor, self._encode, frame, keyframe, self._next_pts()
            )
            # Shielded and kept: when this task is cancelled mid-encode (the loop shutting down),
            # stop() still waits for the encode to finish, so the codec is never used by two
            # threads.
            self._encoding = encoding
            try:
                payloads, timestamp = await asyncio.shield(encoding)
            except Exception:
                logger.exception("encoding a slide frame failed")
                self._keyframe_due = self._keyframe_due or keyframe
                self._encoding = None
                schedule.failed(time.monotonic())
                continue
            self._encoding = None
            if self._stopping:
                break
            self._send(payloads, timestamp, keyframe)
            # Timed from when the frame went out, so a slow keyframe encode does not eat into
            # the gap before its follow-up.
            schedule.sent(time.monotonic(), keyframe and bool(payloads))

    def _next_pts(self) -> int:
        # RTP time follows the wall clock, so receivers pace and measure jitter correctly.
        pts = max(self._last_pts + 1, round((time.monotonic() - self._epoch) * _CLOCK_RATE))
        self._last_pts = pts
        return pts

    def _encode(self, frame: av.VideoFrame, keyframe: bool, pts: int) -> tuple[list[bytes], int]:
        """Encode one frame and packetise it (runs in the executor)."""
        frame.pts = pts
        frame.time_base = _TIME_BASE
        frame.pict_type = PictureType.I if keyframe else PictureType.NONE
        payloads: list[bytes] = []
        timestamp = pts
        context = self._context
        assert context is not None, "stop() clears the encoder only once no encode runs"
        for packet in context.encode(frame):
            packet_payloads, timestamp = self._packetizer.pack(packet)
            payloads.extend(packet_payloads)
        return payloads, timestamp

    def _send(self, payloads: list[bytes], timestamp: int, keyframe: bool) -> None:
        if not payloads:
            return
        now = time.monotonic()
        last = len(payloads) - 1
        size = 0
        for index, payload in enumerate(payloads):
            self.producer.on_rtp(
                self._sequence, timestamp & 0xFFFFFFFF, index == last, payload, None, now
            )
            self._sequence = (self._sequence + 1) & 0xFFFF
            size += len(payload)
        self.frames_sent += 1
        self.bytes_sent += size
        if keyframe:
            self.keyframes_sent += 1
            self.last_keyframe_bytes = size
