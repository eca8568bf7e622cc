"""N-1 audio: each receiver hears the others' tones and not its own, loud rooms never wrap."""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt
import pytest
from aiortc.codecs.opus import OpusEncoder

from mcu.mixer import audio
from mcu.mixer.audio import (
    FRAME_SAMPLES,
    LIMIT_KNEE,
    MonoResampler,
    mix_minus,
    pcm_frame,
    soft_limit,
    to_mono_48k,
)

TONES = {"ana": 440.0, "ben": 1000.0, "cai": 2200.0, "dan": 3300.0}
FRAMES = 10


def tone(frequency: float, amplitude: float, frame: int) -> npt.NDArray[np.int16]:
    t = (np.arange(FRAME_SAMPLES) + frame * FRAME_SAMPLES) / 48000
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def strength(signal: npt.NDArray[np.int16], frequency: float) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    freqs = np.fft.rfftfreq(len(signal), 1 / 48000)
    band = (freqs > frequency - 15) & (freqs < frequency + 15)
    return float(spectrum[band].max())


def test_each_receiver_hears_everyone_but_itself() -> None:
    receivers = [*TONES, "viewer"]  # "viewer" sends no audio: it hears everyone
    heard: dict[str, list[npt.NDArray[np.int16]]] = {r: [] for r in receivers}
    for frame in range(FRAMES):
        frames = {name: tone(f, 6000, frame) for name, f in TONES.items()}
        mixes = mix_minus(frames, receivers)
        assert set(mixes) == set(receivers)
        for receiver, samples in mixes.items():
            assert samples.dtype == np.int16 and samples.shape == (FRAME_SAMPLES,)
            heard[receiver].append(samples)
    for receiver, chunks in heard.items():
        signal = np.concatenate(chunks)
        loud = min(strength(signal, f) for name, f in TONES.items() if name != receiver)
        assert loud > 1e6, receiver
        if receiver in TONES:
            assert strength(signal, TONES[receiver]) < loud / 1000, receiver


def test_quiet_mixes_are_exact_sums() -> None:
    frames = {name: tone(f, 3000, 0) for name, f in TONES.items()}
    mixes = mix_minus(frames, ["ana", "viewer"])
    total = sum(f.astype(np.int32) for f in frames.values())
    assert np.array_equal(mixes["viewer"], total)
    assert np.array_equal(mixes["ana"], total - frames["ana"])


def test_sixteen_loud_sources_never_clip_or_wrap() -> None:
    names = [f"p{i}" for i in range(16)]
    full = np.full(FRAME_SAMPLES, 32767, np.int16)
    full[::2] = -32768  # worst case: every source at full scale, in phase
    frames = {n: full for n in names}
    frames |= {"p15": tone(1000, 32767, 0)}
    mixes = mix_minus(frames, [*names, "viewer"])
    for receiver, samples in mixes.items():
        expected = sum(f.astype(np.int64) for n, f in frames.items() if n != receiver)
        assert int(np.abs(samples.astype(np.int32)).max()) <= 32767
        assert np.all(np.sign(samples) == np.sign(expected)), receiver  # no sign flip
        assert np.abs(samples[expected > 100_000]).min() > 32000  # loud stays loud


def test_the_limiter_is_transparent_below_the_knee_and_smooth_above() -> None:
    sums = np.arange(-600_000, 600_001, 97, dtype=np.int32)
    out = soft_limit(sums).astype(np.int32)
    assert np.all(np.diff(out) >= 0)  # monotonic: louder in, never quieter out
    inside = np.abs(sums) <= LIMIT_KNEE
    assert np.array_equal(out[inside], sums[inside])
    assert np.abs(np.diff(out)).max() <= 97  # slope never above 1: no jumps at the knee
    assert out.max() <= 32767 and out.min() >= -32767


def test_silence_in_silence_out() -> None:
    silent = np.zeros(FRAME_SAMPLES, np.int16)
    mixes = mix_minus({"a": silent, "b": silent}, ["a", "b", "c"])
    assert all(not m.any() and m.shape == (FRAME_SAMPLES,) for m in mixes.values())
    nobody = mix_minus({}, ["a"])
    assert nobody["a"].shape == (FRAME_SAMPLES,) and not nobody["a"].any()
    assert mix_minus({"a": silent}, []) == {}


def test_short_frames_are_padded() -> None:
    mixes = mix_minus({"a": np.ones(480, np.int16), "b": np.ones(960, np.int16)}, ["b"])
    assert mixes["b"].shape == (960,)
    assert mixes["b"][:480].tolist() == [1] * 480 and not mixes["b"][480:].any()


def stereo_frame(
    left: npt.NDArray[np.int16], right: npt.NDArray[np.int16], rate: int = 48000
) -> av.AudioFrame:
    interleaved = np.stack([left, right], axis=1).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout="stereo")
    frame.sample_rate = rate
    return frame


def test_stereo_48k_is_downmixed_as_the_mean() -> None:
    left, right = tone(440, 8000, 0), tone(1000, 8000, 0)
    mono = to_mono_48k(stereo_frame(left, right))
    expected = (left.astype(np.int32) + right) / 2
    assert mono.dtype == np.int16 and mono.shape == (FRAME_SAMPLES,)
    assert np.abs(mono - expected).max() <= 1


def test_mono_resampler_returns_whole_20ms_frames() -> None:
    resampler = MonoResampler()
    half = tone(440, 8000, 0)[:480]
    assert resampler.to_mono_frames(stereo_frame(half, half)) == []
    out = resampler.to_mono_frames(stereo_frame(half, half))
    assert [len(f) for f in out] == [FRAME_SAMPLES]
    # 44.1 kHz in: 48 kHz out, in whole frames, with the remainder kept.
    resampler = MonoResampler()
    total = 0
    for i in range(10):
        chunk = tone(440, 8000, i)[:882]  # 20 ms at 44.1 kHz
        frames = resampler.to_mono_frames(stereo_frame(chunk, chunk, rate=44100))
        assert all(len(f) == FRAME_SAMPLES for f in frames)
        total += len(frames) * FRAME_SAMPLES
    assert 8 * FRAME_SAMPLES <= total <= 10 * FRAME_SAMPLES


def test_pcm_frame_feeds_the_opus_encoder() -> None:
    samples = tone(440, 8000, 0)
    frame = pcm_frame(samples, 960 * 7)
    assert (frame.format.name, frame.layout.name, frame.sample_rate) == ("s16", "mono", 48000)
    assert (frame.samples, frame.pts, frame.time_base) == (960, 6720, audio._TIME_BASE)
    assert np.array_equal(frame.to_ndarray().reshape(-1), samples)
    encoder = OpusEncoder()
    first, _ = encoder.encode(frame)
    second, timestamp = encoder.encode(pcm_frame(samples, 960 * 8))
    assert first and second and timestamp == 960  # aiortc counts from its first packet


@pytest.mark.parametrize("n", [1, 2, 16])
def test_o_n_mix_matches_the_direct_sum(n: int) -> None:
    rng = np.random.default_rng(n)
    frames = {f"p{i}": rng.integers(-2000, 2000, FRAME_SAMPLES).astype(np.int16) for i in range(n)}
    mixes = mix_minus(frames, list(frames))
    for receiver, samples in mixes.items():
        direct = np.zeros(FRAME_SAMPLES, np.int32)
        for k, f in frames.items():
            if k != receiver:
                direct += f
        assert np.array_equal(samples, direct)
