"""A room's mix: decoded inputs in, one composite picture per layout and N-1 sound per receiver out.

Each distinct (layout, size, bitrate, page) is composed and encoded once and published as an
ordinary producer, so its receivers get it through the same forwarding path as any track (NACK,
keyframes on join). Each mixed receiver gets its own audio producer carrying everyone but itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from mcu.media import CodecInfo, TrackSource
from mcu.mixer.audio import mix_minus, pcm_frame
from mcu.mixer.compositor import Compositor
from mcu.mixer.inputs import DecodingInput
from mcu.mixer.layout import LayoutInput, compute_layout
from mcu.mixer.specs import MixSpec, choose
from mcu.sfu.producer import Producer

logger = logging.getLogger(__name__)

CONTENT_MARK = "\u25b6"
"""Drawn before the presenter's name on a content tile ("▶ 王医生"). One picture serves every
receiver whatever their page's language, so the mix draws no words of ours: only names as typed
and this mark, which the CJK label fonts (and DejaVu Sans) have."""

MIX_PARTICIPANT = "mix"
"participant_id of mixed tracks in the protocol."
VIDEO_CODEC = CodecInfo("video/VP8", 90000)
AUDIO_CODEC = CodecInfo("audio/opus", 48000, 2)
AUDIO_FRAME_SECONDS = 0.02


@dataclass
class RoomSource:
    """A room participant as the mix sees it."""

    participant_id: str
    name: str


class _Encoder:
    """An aiortc encoder used from the executor, one call at a time."""

    def __init__(self, codec: CodecInfo, bitrate: int | None = None) -> None:
        self.encoder: Any = get_encoder(
            RTCRtpCodecParameters(
                mimeType=codec.mime_type, clockRate=codec.clock_rate, channels=codec.channels
            )
        )
        if bitrate is not None and hasattr(self.encoder, "target_bitrate"):
            self.encoder.target_bitrate = bitrate


class _RtpFeeder:
    """Numbers encoded payloads and hands them to a producer."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.sequence = 0

    def feed(self, payloads: list[bytes], timestamp: int, audio_level: int | None = None) -> None:
        now = time.monotonic()
        for i, payload in enumerate(payloads):
            self.producer.on_rtp(
                self.sequence, timestamp & 0xFFFFFFFF, i == len(payloads) - 1, payload,
                audio_level, now,
            )  # fmt: skip
            self.sequence = (self.sequence + 1) & 0xFFFF


class MixedVideo:
    """One composite picture, encoded once for every receiver with the same spec."""

    running = 0
    "Encodes running in this process, every room together (bounded by ``specs.choose``)."

    def __init__(self, session: MixSession, spec: MixSpec, producer: Producer) -> None:
        self.session = session
        self.spec = spec
        self.producer = producer
        self.frames_sent = 0
        self.frames_late = 0
        self._compositor = Compositor(spec.width, spec.height)
        self._encoder = _Encoder(VIDEO_CODEC, spec.bitrate)
        self._feeder = _RtpFeeder(producer)
        self._keyframe = True
        self._pts = 0
        producer.send_keyframe_request = self.request_keyframe
        self._task = asyncio.create_task(self._run())
        self._counted = True
        MixedVideo.running += 1

    def request_keyframe(self) -> None:
        self._keyframe = True

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = 1 / self.spec.fps
        deadline = loop.time()
        while True:
            deadline += interval
            inputs, pictures, speaker = self.session.video_inputs()
            tiles = compute_layout(
                self.spec.layout,
                inputs,
                (self.spec.width, self.spec.height),
                active_speaker=speaker,
                page=self.spec.page,
            )
            keyframe, self._keyframe = self._keyframe, False
            self._pts += int(90000 * interval)
            try:
                payloads, timestamp = await loop.run_in_executor(
                    self.session.executor, self._compose_encode, tiles, pictures, speaker,
                    keyframe, self._pts,
                )  # fmt: skip
            except Exception:
                logger.exception("mixing a frame failed")
                payloads, timestamp = [], 0
            if payloads:
                self._feeder.feed(payloads, timestamp)
                self.frames_sent += 1
            delay = deadline - loop.time()
            if delay < 0:
                self.frames_late += 1
                deadline = loop.time()  # behind: skip, don't try to catch up
                delay = 0
            await asyncio.sleep(delay)

    def _compose_encode(
        self, tiles: Any, pictures: Any, speaker: str | None, keyframe: bool, pts: int
    ) -> tuple[list[bytes], int]:
        frame = self._compositor.compose(tiles, pictures, highlight=speaker)
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, 90000)
        payloads, timestamp = self._encoder.encoder.encode(frame, keyframe)
        return list(payloads), int(timestamp)

    async def stop(self) -> None:
        if self._counted:
            self._counted = False
            MixedVideo.running -= 1
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.producer.close()


class MixedAudio:
    """One receiver's N-1 sound, encoded for that receiver alone."""

    def __init__(self, receiver_id: str, producer: Producer) -> None:
        self.receiver_id = receiver_id
        self.producer = producer
        self.encoder = _Encoder(AUDIO_CODEC)
        self.feeder = _RtpFeeder(producer)
        self.samples = 0


class MixSession:
    """Everything a room mixes. Created when the first receiver asks for the mix."""

    def __init__(
        self,
        new_producer: Callable[[TrackSource, CodecInfo], Producer],
        sources: Callable[[], list[RoomSource]],
        active_speaker: Callable[[], str | None],
        executor: Executor | None = None,
    ) -> None:
        self.executor = executor
        self.inputs: dict[str, DecodingInput] = {}
        "By track id."
        self.videos: dict[MixSpec, MixedVideo] = {}
        self.audios: dict[str, MixedAudio] = {}
        "By receiving participant id."
        self._new_producer = new_producer
        self._sources = sources
        self._active_speaker = active_speaker
        self._audio_task = asyncio.create_task(self._run_audio())

    # -- inputs ------------------------------------------------------------------------------

    def add_input(self, producer: Producer) -> None:
        """Decode ``producer`` for the mix (every published track of the room)."""
        if producer.track_id in self.inputs or producer.participant_id == MIX_PARTICIPANT:
            return
        decoding = DecodingInput(producer, self.executor)
        self.inputs[producer.track_id] = decoding
        producer.add_sink(decoding)
        producer.request_keyframe(time.monotonic())

    def remove_input(self, track_id: str) -> None:
        """The track ended: it leaves the picture and the sound."""
        decoding = self.inputs.pop(track_id, None)
        if decoding is not None:
            decoding.producer.remove_sink(decoding)
            decoding.close()

    def sync_inputs(self, producers: Iterable[Producer]) -> None:
        """Make the inputs exactly ``producers``."""
        wanted = {p.track_id: p for p in producers if p.participant_id != MIX_PARTICIPANT}
        for track_id in list(self.inputs):
            if track_id not in wanted:
                self.remove_input(track_id)
        for producer in wanted.values():
            self.add_input(producer)

    def video_inputs(self) -> tuple[list[LayoutInput], dict[str, av.VideoFrame | None], str | None]:
        """Layout inputs (one per participant camera, plus content) and their pictures now."""
        now = time.monotonic()
        names = {s.participant_id: s.name for s in self._sources()}
        inputs: list[LayoutInput] = []
        pictures: dict[str, av.VideoFrame | None] = {}
        cameras = {
            d.source_id for d in self.inputs.values() if d.producer.source is TrackSource.CAMERA
        }
        for participant_id, name in names.items():
            if participant_id not in cameras:
                inputs.append(LayoutInput(participant_id, name))
                pictures[participant_id] = None  # audio-only or camera off: a name tile
        for decoding in self.inputs.values():
            if decoding.kind != "video":
                continue
            content = decoding.producer.source is TrackSource.CONTENT
            key = f"{decoding.source_id}:content" if content else decoding.source_id
            label = names.get(decoding.source_id, "")
            shown = f"{CONTENT_MARK} {label}" if content else label
            inputs.append(LayoutInput(key, shown, content))
            pictures[key] = decoding.current_picture(now)
        inputs.sort(key=lambda i: (i.is_content, i.label))
        return inputs, pictures, self._active_speaker()

    # -- outputs -----------------------------------------------------------------------------

    def resolve(self, asked: MixSpec) -> MixSpec:
        """The spec of the encode a receiver asking for ``asked`` gets (see ``specs.choose``)."""
        return choose(asked, self.videos.keys(), MixedVideo.running)

    def video_for(self, asked: MixSpec) -> Producer:
        """The composite producer for what ``asked`` resolves to (created on first use, shared
        afterwards)."""
        spec = self.resolve(asked)
        mixed = self.videos.get(spec)
        if mixed is None:
            producer = self._new_producer(TrackSource.CAMERA, VIDEO_CODEC)
            mixed = self.videos[spec] = MixedVideo(self, spec, producer)
        return mixed.producer

    def audio_for(self, receiver_id: str) -> Producer:
        """The receiver's N-1 audio producer."""
        mixed = self.audios.get(receiver_id)
        if mixed is None:
            producer = self._new_producer(TrackSource.MICROPHONE, AUDIO_CODEC)
            mixed = self.audios[receiver_id] = MixedAudio(receiver_id, producer)
        return mixed.producer

    async def retain(self, specs: set[MixSpec], receivers: set[str]) -> None:
        """Stop the outputs nobody receives any more (``specs`` as resolved)."""
        # Taken out before the first await: a concurrent retain (two receivers leaving mixed
        # mode at once) must not find them again.
        stale = [self.videos.pop(s) for s in [s for s in self.videos if s not in specs]]
        for receiver in [r for r in self.audios if r not in receivers]:
            self.audios.pop(receiver).producer.close()
        for video in stale:
            await video.stop()

    async def _run_audio(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            deadline += AUDIO_FRAME_SECONDS
            frames: dict[str, np.ndarray] = {}
            for decoding in self.inputs.values():
                if decoding.kind == "audio":
                    chunk = decoding.next_audio()
                    if chunk is not None:
                        frames[decoding.source_id] = chunk
            receivers = list(self.audios.values())
            if receivers:
                try:
                    encoded = await loop.run_in_executor(
                        self.executor, _encode_audio, frames, receivers
                    )
                except Exception:
                    logger.exception("mixing audio failed")
                    encoded = []
                for mixed, payloads, timestamp in encoded:
                    mixed.feeder.feed(payloads, timestamp)
            delay = deadline - loop.time()
            if delay < 0:
                deadline = loop.time()
                delay = 0
            await asyncio.sleep(delay)

    async def close(self) -> None:
        """Stop everything."""
        self._audio_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._audio_task
        for track_id in list(self.inputs):
            self.remove_input(track_id)
        await self.retain(set(), set())


def _encode_audio(
    frames: dict[str, np.ndarray], receivers: list[MixedAudio]
) -> list[tuple[MixedAudio, list[bytes], int]]:
    mixes = mix_minus(frames, [r.receiver_id for r in receivers])
    out = []
    for mixed in receivers:
        frame = pcm_frame(mixes[mixed.receiver_id], mixed.samples)
        mixed.samples += frame.samples
        payloads, timestamp = mixed.encoder.encoder.encode(frame)
        if payloads:
            out.append((mixed, list(payloads), int(timestamp)))
    return out
