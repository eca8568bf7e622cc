"""Media for cheap publishers: a clip encoded once, then looped as pre-encoded packets.

Every publisher of a run shares one clip. It is encoded at start with aiortc's own encoders
(``Vp8Encoder`` or ``H264Encoder`` on synthetic frames, ``OpusEncoder`` on a tone), turned back
into one elementary-stream frame per ``av.Packet``, and a publisher's track yields those packets
with increasing timestamps. aiortc's ``RTCRtpSender`` accepts an ``av.Packet`` from ``recv()`` and
only packetizes it (``encoder.pack``): no encoding per publisher. The price: keyframe requests
(PLI/FIR) are ignored, so the clip itself has a keyframe at its start, every ``CLIP_SECONDS``.

Audio packets carry no audio level that way (aiortc computes it from decoded frames only), so
"speakers" (``--speakers``) instead yield PCM frames that alternate loud and quiet and are encoded
live by aiortc: Opus at 50 frames/s costs little, and their levels drive the active speaker.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from dataclasses import dataclass

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.codecs.h264 import H264Encoder, h264_depayload
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload

VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000
AUDIO_FRAME = 960  # 20 ms
FPS = 30
CLIP_SECONDS = 2  # looping gives a keyframe every 2 s
WARMUP_FRAMES = 15  # encoded and dropped so the rate control has settled
SPEAKER_SLOT_SECONDS = 2.0
LOUD, QUIET = 0.3, 0.002


@dataclass(frozen=True)
class Clip:
    """One encoded loop of video and audio, shared by every publisher."""

    video_codec: str
    "``video/VP8`` or ``video/H264``."
    video: list[bytes]
    "One elementary-stream frame per entry, keyframe first, ``FPS`` frames per second."
    audio: list[bytes]
    "One Opus packet (20 ms) per entry."
    width: int
    "Picture width in pixels."
    height: int
    "Picture height in pixels."

    def describe(self) -> dict[str, float | int | str]:
        """Size and rate of the clip, for the report."""
        video_bytes = sum(map(len, self.video))
        return {
            "video_codec": self.video_codec,
            "resolution": f"{self.width}x{self.height}",
            "fps": FPS,
            "seconds": len(self.video) / FPS,
            "video_bitrate_bps": round(video_bytes * 8 * FPS / len(self.video)),
            "keyframe_bytes": len(self.video[0]),
            "audio_bitrate_bps": round(sum(map(len, self.audio)) * 8 * 50 / len(self.audio)),
        }


def _synthetic_frames(width: int, height: int, count: int) -> list[av.VideoFrame]:
    """A scrolling blocky texture plus noise: real deltas, so the encoder spends its bitrate."""
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 256, size=(height // 8 + 1, (width + 240) // 8 + 1, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1).astype(np.int16)
    frames = []
    for i in range(count):
        x = (i * 3) % 240
        noise = rng.integers(-12, 13, size=(height, width, 3))
        image = (texture[:height, x : x + width] + noise).clip(0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = i * (VIDEO_CLOCK // FPS)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        frames.append(frame)
    return frames


def tone_frame(index: int, amplitude: float, frequency: float = 440.0) -> av.AudioFrame:
    """Frame ``index`` (20 ms, mono, s16) of a sine tone."""
    t = (np.arange(AUDIO_FRAME) + index * AUDIO_FRAME) / AUDIO_RATE
    pcm = (np.sin(2 * math.pi * frequency * t) * amplitude * 32767).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = AUDIO_RATE
    frame.pts = index * AUDIO_FRAME
    frame.time_base = fractions.Fraction(1, AUDIO_RATE)
    return frame


def encode_clip(video_codec: str, width: int, height: int, bitrate: int) -> Clip:
    """Encode the shared clip (blocking: run it in an executor)."""
    if video_codec == "video/VP8":
        encoder: Vp8Encoder | H264Encoder = Vp8Encoder()
        depayload = vp8_depayload
    else:
        encoder = H264Encoder()
        depayload = h264_depayload
    encoder.target_bitrate = bitrate
    video: list[bytes] = []
    frames = _synthetic_frames(width, height, WARMUP_FRAMES + CLIP_SECONDS * FPS)
    for i, frame in enumerate(frames):
        payloads, _ = encoder.encode(frame, force_keyframe=i == WARMUP_FRAMES)
        if i >= WARMUP_FRAMES:
            # Back to one elementary-stream frame: the sender's encoder.pack() re-packetizes it.
            video.append(b"".join(depayload(p) for p in payloads))
    opus = OpusEncoder()
    audio: list[bytes] = []
    for i in range(CLIP_SECONDS * 50 + 5):
        payloads, _ = opus.encode(tone_frame(i, LOUD * 0.5))
        audio.extend(payloads)
    return Clip(video_codec, video, audio[: CLIP_SECONDS * 50], width, height)


class _Paced(MediaStreamTrack):
    """A track that returns item ``n`` at ``start + n * interval`` (real time)."""

    interval = 0.02

    def __init__(self) -> None:
        super().__init__()
        self._count = 0
        self._start: float | None = None

    async def _next_index(self) -> int:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._count * self.interval
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        index = self._count
        self._count += 1
        return index


class ClipTrack(_Paced):
    """Loops one of the clip's streams as ``av.Packet`` objects with increasing timestamps."""

    def __init__(self, kind: str, packets: list[bytes]) -> None:
        super().__init__()
        self.kind = kind
        self._packets = packets
        if kind == "video":
            self.interval, self._ticks = 1 / FPS, VIDEO_CLOCK // FPS
            self._time_base = fractions.Fraction(1, VIDEO_CLOCK)
        else:
            self.interval, self._ticks = AUDIO_FRAME / AUDIO_RATE, AUDIO_FRAME
            self._time_base = fractions.Fraction(1, AUDIO_RATE)

    async def recv(self) -> av.Packet:  # type: ignore[override]
        index = await self._next_index()
        packet = av.Packet(self._packets[index % len(self._packets)])
        packet.pts = index * self._ticks
        packet.time_base = self._time_base
        return packet


class SpeakerTrack(_Paced):
    """PCM that is loud in this speaker's time slot and quiet otherwise (encoded by aiortc)."""

    kind = "audio"

    def __init__(self, slot: int, speakers: int) -> None:
        super().__init__()
        self.interval = AUDIO_FRAME / AUDIO_RATE
        self._slot, self._speakers = slot, speakers
        self._loud = [tone_frame(i, LOUD).to_ndarray() for i in range(50)]
        self._quiet = [tone_frame(i, QUIET).to_ndarray() for i in range(50)]

    def loud_at(self, index: int) -> bool:
        """Whether frame ``index`` falls in this speaker's slot."""
        slot = int(index * self.interval / SPEAKER_SLOT_SECONDS)
        return slot % self._speakers == self._slot

    async def recv(self) -> av.AudioFrame:  # type: ignore[override]
        index = await self._next_index()
        pcm = (self._loud if self.loud_at(index) else self._quiet)[index % 50]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = index * AUDIO_FRAME
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame
