"""N-1 audio mixing: every receiver hears everyone but itself, 20 ms at a time.

Sound is mixed as 48 kHz mono int16, 960 samples (20 ms) per frame. The sum of all sources is
taken once, in int32, and each receiver's own frame subtracted from it, so a room of N costs O(N)
rather than O(N²). The result goes through a soft limiter before it is narrowed to int16.

Limiter: a stateless soft-knee curve. Below the knee (-2.5 dBFS) samples pass untouched, so one or
two talkers — nearly always the case — are mixed bit-exactly. Above it the excess is compressed
with ``tanh`` into the remaining headroom: the curve is continuous with slope 1 at the knee (no
kink, hence no harsh clipping) and approaches full scale without reaching it, so sixteen loud
sources can never wrap or flip sign. A gain-riding limiter (attack/release) would distort less on
sustained overload, but needs per-receiver state across frames and look-ahead delay; overload of a
speech mix is rare and brief, so the pure function wins.
"""

from __future__ import annotations

import fractions
from collections.abc import Iterable, Mapping

import av
import numpy as np
import numpy.typing as npt
from av.frame import Frame

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960
"Samples per 20 ms frame."
LIMIT_KNEE = 24576
"Samples up to this magnitude (0.75 of full scale, -2.5 dBFS) pass through the limiter unchanged."
_HEADROOM = 32767 - LIMIT_KNEE
_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)

Samples = npt.NDArray[np.int16]


def mix_minus(frames: Mapping[str, np.ndarray], receivers: Iterable[str]) -> dict[str, Samples]:
    """Each receiver's mix: the sum of every frame in ``frames`` but its own, limited to int16.

    ``frames`` maps a source (participant) id to its current 20 ms of mono int16; a source with
    nothing to say this tick is simply absent. A receiver that is not a source (silent, muted,
    video-only) gets the full mix. Frames of unequal length are zero-padded to the longest
    (960 samples when ``frames`` is empty). The arrays returned may share memory with each other;
    treat them as read-only.
    """
    receivers = list(receivers)
    length = max((len(f) for f in frames.values()), default=FRAME_SAMPLES)
    index = {source: i for i, source in enumerate(frames)}
    # One row per source, plus a row of zeros "subtracted" for receivers that are not sources.
    stack = np.zeros((len(frames) + 1, length), np.int32)
    for i, samples in enumerate(frames.values()):
        stack[i, : len(samples)] = samples
    total = stack.sum(axis=0, dtype=np.int32)
    rows = [index.get(receiver, len(frames)) for receiver in receivers]
    mixes = total - stack[rows]
    limited = soft_limit(mixes)
    return {receiver: limited[i] for i, receiver in enumerate(receivers)}


def soft_limit(samples: npt.NDArray[np.integer]) -> npt.NDArray[np.int16]:
    """Narrow int32 sums to int16 with the soft-knee curve described in the module docstring."""
    if samples.size == 0:
        return samples.astype(np.int16)
    peak = max(int(samples.max()), -int(samples.min()))
    if peak <= LIMIT_KNEE:
        return samples.astype(np.int16)  # the common case: nothing to limit
    x = samples.astype(np.float32)
    magnitude = np.abs(x)
    over = magnitude > LIMIT_KNEE
    shaped = LIMIT_KNEE + _HEADROOM * np.tanh((magnitude[over] - LIMIT_KNEE) / _HEADROOM)
    x[over] = np.copysign(shaped, x[over])
    out: npt.NDArray[np.int16] = np.clip(np.rint(x), -32767, 32767).astype(np.int16)
    return out


class MonoResampler:
    """Turns one source's decoded audio into 48 kHz mono int16, in 20 ms frames.

    Keep one per source: the resampler carries filter state between frames when the source's
    rate is not 48 kHz, and a part frame waits here until the next call completes it.
    """

    def __init__(self) -> None:
        self._resampler: av.AudioResampler | None = None
        self._input: tuple[str, str, int] | None = None
        self._pending: Samples = np.zeros(0, np.int16)

    def to_mono(self, frame: Frame) -> Samples:
        """All of ``frame`` (an audio frame, as decoders return it) as 48 kHz mono int16."""
        if not isinstance(frame, av.AudioFrame):
            raise TypeError(f"expected an audio frame, got {type(frame).__name__}")
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self._resampler is None or key != self._input:
            # libswresample downmixes stereo as (L + R) / 2, so a mono mix cannot clip.
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            self._input = key
        chunks = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        if len(chunks) == 1:
            return chunks[0].astype(np.int16, copy=False)
        return np.concatenate(chunks).astype(np.int16, copy=False) if chunks else _EMPTY

    def to_mono_frames(self, frame: Frame) -> list[Samples]:
        """``frame`` as whole 20 ms frames; a remainder is kept for the next call."""
        samples = self.to_mono(frame)
        if not self._pending.size and len(samples) == FRAME_SAMPLES:
            return [samples]  # Opus at 20 ms: the usual case, no copying
        buffered = np.concatenate([self._pending, samples]) if self._pending.size else samples
        whole = len(buffered) // FRAME_SAMPLES * FRAME_SAMPLES
        self._pending = buffered[whole:].copy()
        return [buffered[i : i + FRAME_SAMPLES] for i in range(0, whole, FRAME_SAMPLES)]


_EMPTY: Samples = np.zeros(0, np.int16)


def to_mono_48k(frame: av.AudioFrame) -> Samples:
    """One frame as 48 kHz mono int16, with a resampler of its own.

    For a stream, keep a :class:`MonoResampler` per source instead: at rates other than 48 kHz a
    fresh resampler per frame loses the filter state at every frame boundary.
    """
    return MonoResampler().to_mono(frame)


def pcm_frame(samples: np.ndarray, pts: int) -> av.AudioFrame:
    """An s16 mono 48 kHz frame of ``samples`` at ``pts`` (in samples), for the Opus encoder."""
    data = np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = _TIME_BASE
    return frame
