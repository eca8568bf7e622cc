"""Mixer inputs: sinks that reassemble and decode one producer's packets.

Only rooms with a mixed receiver have these; a forwarding-only room decodes nothing. Decoding runs
in an executor, one frame after another per input (a decoder is stateful), never on the loop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from concurrent.futures import Executor
from typing import Any

import av
import numpy as np
from aiortc.codecs import depayload, get_decoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from mcu.infra import metrics
from mcu.media import IncomingPacket
from mcu.mixer.audio import MonoResampler
from mcu.sfu.producer import Producer

logger = logging.getLogger(__name__)

# A picture older than this is treated as gone: the tile shows the participant's name only.
FREEZE_SECONDS = 2.0
# At most this much audio (20 ms frames) waits per input; older frames are dropped so a late
# input cannot build up delay in the mix.
MAX_AUDIO_FRAMES = 6
# Decoding keeps at most this many frames queued per input; beyond it frames are skipped until
# the next keyframe (a slow machine drops pictures rather than falling behind).
MAX_PENDING_FRAMES = 4


def _codec_parameters(producer: Producer) -> RTCRtpCodecParameters:
    codec = producer.codec
    return RTCRtpCodecParameters(
        mimeType=codec.mime_type,
        clockRate=codec.clock_rate,
        channels=codec.channels,
        payloadType=96,
        parameters=dict(codec.parameters),
    )


class DecodingInput:
    """Turns one producer's packets into decoded frames for the mixer (a PacketSink)."""

    def __init__(self, producer: Producer, executor: Executor | None = None) -> None:
        self.producer = producer
        self.source_id = producer.participant_id
        self.kind = producer.kind
        self.latest_video: av.VideoFrame | None = None
        self.latest_at = 0.0
        self.audio: collections.deque[np.ndarray] = collections.deque(maxlen=MAX_AUDIO_FRAMES)
        self.frames_decoded = 0
        self._codec = _codec_parameters(producer)
        video = self.kind == "video"
        self._jitter = JitterBuffer(capacity=128 if video else 16, is_video=video)
        self._decoder = get_decoder(self._codec)
        self._resampler = MonoResampler() if not video else None
        self._executor = executor
        self._queue: asyncio.Queue[JitterFrame | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._decode_loop())
        self._closed = False
        self._waiting_keyframe = video

    # -- PacketSink --------------------------------------------------------------------------

    def on_packet(self, packet: IncomingPacket) -> None:
        if self._closed:
            return
        rtp = RtpPacket(
            payload_type=96,
            marker=int(packet.marker),
            sequence_number=packet.ext_sequence & 0xFFFF,
            timestamp=packet.timestamp,
        )
        try:
            rtp._data = depayload(self._codec, packet.payload)  # type: ignore[attr-defined]
        except ValueError:
            return
        rtp.payload = packet.payload
        pli, frame = self._jitter.add(rtp)
        if pli:
            self.producer.request_keyframe(packet.arrival)
        if frame is None:
            return
        if self._queue.qsize() >= MAX_PENDING_FRAMES:
            self._waiting_keyframe = self.kind == "video"
            self.producer.request_keyframe(packet.arrival)
            return
        if self._waiting_keyframe:
            if not packet.keyframe and not _frame_is_keyframe(self._codec, frame):
                self.producer.request_keyframe(packet.arrival)
                return
            self._waiting_keyframe = False
        self._queue.put_nowait(frame)

    def on_sender_report(self, ntp_time: int, rtp_time: int) -> None:
        pass

    def resync(self) -> None:
        self._jitter = JitterBuffer(capacity=self._jitter.capacity, is_video=self.kind == "video")
        self._waiting_keyframe = self.kind == "video"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    # -- decoding ----------------------------------------------------------------------------

    async def _decode_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            frame = await self._queue.get()
            if frame is None:
                return
            try:
                decoded = await loop.run_in_executor(self._executor, self._decode, frame)
            except Exception:
                logger.debug("decode failed for %s", self.producer.track_id, exc_info=True)
                self.producer.request_keyframe(time.monotonic())
                continue
            now = time.monotonic()
            for item in decoded:
                if isinstance(item, av.VideoFrame):
                    self.latest_video, self.latest_at = item, now
                elif isinstance(item, np.ndarray):
                    self.audio.append(item)

    def _decode(self, frame: JitterFrame) -> list[Any]:
        frames = self._decoder.decode(frame)
        metrics.DECODED_FRAMES.inc(len(frames))
        self.frames_decoded += len(frames)
        if self._resampler is None:
            return list(frames)
        out: list[Any] = []
        for audio in frames:
            out.extend(self._resampler.to_mono_frames(audio))
        return out

    def current_picture(self, now: float) -> av.VideoFrame | None:
        """The latest picture, or None if the input froze or never decoded."""
        if self.latest_video is None or now - self.latest_at > FREEZE_SECONDS:
            return None
        return self.latest_video

    def next_audio(self) -> np.ndarray | None:
        """The next 20 ms of mono audio, or None when nothing is waiting."""
        return self.audio.popleft() if self.audio else None

    async def wait_closed(self) -> None:
        """Wait for the decode loop to finish after close()."""
        await asyncio.gather(self._task, return_exceptions=True)


def _frame_is_keyframe(codec: RTCRtpCodecParameters, frame: JitterFrame) -> bool:
    data = frame.data
    if codec.mimeType.lower() == "video/vp8":
        return bool(data) and not data[0] & 0x01
    return b"\x00\x00\x01\x65" in data[:4096] or b"\x00\x00\x01\x67" in data[:256]
