"""One picture and one sound from a session's per-track files, for watching it afterwards.

:func:`make_composite` reads the MP4 files the :class:`~.writer.TrackWriter` objects wrote, places
each on the recording's time line at its start offset, lays the people out as the live mix does
(:func:`mcu.mixer.layout.compute_layout`: ``content`` while someone shares content, else ``grid``)
and draws them with the live mix's :class:`mcu.mixer.compositor.Compositor`, frame by frame. A
participant is in the picture while one of their tracks runs: a camera shows its latest picture, a
microphone without a camera a grey tile with the name; when a track ends it leaves the picture.
All microphones are summed and narrowed with :func:`mcu.mixer.audio.soft_limit`.

The result is H.264 with **AAC** sound in a plain MP4 with the index at the front (``+faststart``):
unlike the per-track files (Opus, fragmented, for robustness while recording), the composite is
made once, after the session, for on-demand viewing, and AAC in MP4 plays everywhere (every
browser, QuickTime, phones, hardware players). It is synchronous and CPU-bound: run it in an
executor or a process.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
import numpy.typing as npt

from mcu.mixer.audio import SAMPLE_RATE, MonoResampler, soft_limit
from mcu.mixer.compositor import Compositor
from mcu.mixer.layout import LayoutInput, LayoutKind, compute_layout

logger = logging.getLogger(__name__)

VIDEO_OPTIONS = {"preset": "veryfast", "crf": "23"}
"libx264 for the composite: made once, offline; medium quality at a few times real-time speed."
AUDIO_BITRATE = 96_000
"AAC, mono: speech at broadcast quality."
END_GRACE_S = 0.5
"A picture stays this long after its track's end, so a short break does not reshuffle the layout."


@dataclass(frozen=True)
class RecordedTrack:
    """One per-track file of a recording, and where it sits on the recording's time line."""

    path: Path | str
    "The MP4 file."
    kind: Literal["audio", "video"]
    "``audio`` or ``video``."
    source: Literal["camera", "microphone", "content"]
    "What the track carried."
    participant_name: str
    "Whose it is; labels the tile."
    start_offset_s: float | None
    """Seconds from the start of the recording to the track's first sample; None: where the
    file's own time stamps put it (the recorder writes them on the recording's time line)."""


@dataclass(frozen=True)
class _Extent:
    first: float
    "Time of the first sample in the file's own time."
    end: float
    "Time just after the last sample, in the file's own time."


def _extent(path: Path | str) -> _Extent | None:
    """First and end time of a file's first stream, by demuxing (no decoding)."""
    first = math.inf
    end = -math.inf
    with av.open(str(path)) as container:
        stream = container.streams[0]
        for packet in container.demux(stream):
            if packet.pts is None or packet.time_base is None:
                continue
            start = float(packet.pts * packet.time_base)
            first = min(first, start)
            end = max(end, start + float((packet.duration or 0) * packet.time_base))
    return _Extent(first, end) if first < math.inf else None


def _start(track: RecordedTrack, extent: _Extent) -> float:
    """Where the track starts on the recording's time line."""
    return max(0.0, extent.first) if track.start_offset_s is None else track.start_offset_s


class _VideoReader:
    """One video track's pictures on the recording's time line, read on demand."""

    def __init__(self, track: RecordedTrack, extent: _Extent) -> None:
        self.track = track
        self.start = _start(track, extent)
        self.end = self.start + (extent.end - extent.first)
        self.shown_until = self.end + END_GRACE_S
        self._shift = self.start - extent.first
        self._container = av.open(str(track.path))
        self._frames: Iterator[av.VideoFrame] = self._container.decode(video=0)
        self._next: av.VideoFrame | None = self._read()
        self.current: av.VideoFrame | None = None

    def _read(self) -> av.VideoFrame | None:
        try:
            return next(self._frames)
        except (StopIteration, av.FFmpegError):  # a file cut short ends at its last whole frame
            return None

    def _time(self, frame: av.VideoFrame) -> float:
        return (frame.time or 0.0) + self._shift

    def picture_at(self, t: float) -> av.VideoFrame | None:
        """The latest picture at ``t`` (seconds on the recording's time line)."""
        while self._next is not None and self._time(self._next) <= t:
            self.current, self._next = self._next, self._read()
        return self.current

    def close(self) -> None:
        self._container.close()


class _AudioReader:
    """One audio track as 48 kHz mono, added into the mix by sample position."""

    def __init__(self, track: RecordedTrack, extent: _Extent) -> None:
        self.track = track
        self.start = _start(track, extent)
        self.end = self.start + (extent.end - extent.first)
        self._shift = self.start - extent.first
        self._container = av.open(str(track.path))
        self._frames: Iterator[av.AudioFrame] = self._container.decode(audio=0)
        self._resampler = MonoResampler()
        self._pending: list[tuple[int, npt.NDArray[np.int16]]] = []
        self._done = False

    def _read(self) -> bool:
        try:
            frame = next(self._frames)
        except (StopIteration, av.FFmpegError):
            self._done = True
            return False
        position = round(((frame.time or 0.0) + self._shift) * SAMPLE_RATE)
        samples = self._resampler.to_mono(frame)
        if samples.size:
            self._pending.append((position, samples))
        return True

    def add_into(self, mix: npt.NDArray[np.int32], start: int) -> None:
        """Add this track's samples in ``[start, start + len(mix))`` to ``mix``."""
        stop = start + len(mix)
        while not self._done and (not self._pending or self._pending[-1][0] < stop):
            self._read()
        kept: list[tuple[int, npt.NDArray[np.int16]]] = []
        for position, samples in self._pending:
            lo, hi = max(position, start), min(position + len(samples), stop)
            if lo < hi:
                mix[lo - start : hi - start] += samples[lo - position : hi - position]
            if position + len(samples) > stop:
                kept.append((position, samples))
        self._pending = kept

    def close(self) -> None:
        self._container.close()


def make_composite(
    tracks: list[RecordedTrack],
    out_path: Path | str,
    size: tuple[int, int] = (1280, 720),
    fps: int = 25,
) -> None:
    """Render ``tracks`` into one MP4 at ``out_path`` (H.264 ``size`` at ``fps``, AAC mono).

    The composite runs from the start of the recording to the end of its last track. Raises
    ValueError when no track has any media; files that do not open are skipped (logged).
    """
    videos: list[_VideoReader] = []
    audios: list[_AudioReader] = []
    readers: list[_VideoReader | _AudioReader] = []
    try:
        for track in tracks:
            try:
                extent = _extent(track.path)
            except av.FFmpegError as exc:
                logger.warning("composite: %s skipped: %s", track.path, exc)
                continue
            if extent is None:
                continue
            if track.kind == "video":
                videos.append(_VideoReader(track, extent))
                readers.append(videos[-1])
            else:
                audios.append(_AudioReader(track, extent))
                readers.append(audios[-1])
        if not videos and not audios:
            raise ValueError("no track has any media")
        end = max(reader.end for reader in readers)
        _render(videos, audios, Path(out_path), size, fps, end)
    finally:
        for reader in readers:
            reader.close()


def _render(
    videos: list[_VideoReader],
    audios: list[_AudioReader],
    out_path: Path,
    size: tuple[int, int],
    fps: int,
    end: float,
) -> None:
    width, height = size
    compositor = Compositor(width, height)
    names = sorted(
        {v.track.participant_name for v in videos} | {a.track.participant_name for a in audios}
    )
    samples_per_frame = SAMPLE_RATE // fps
    with av.open(str(out_path), "w", format="mp4", options={"movflags": "+faststart"}) as output:
        video = output.add_stream("libx264", rate=fps, options=VIDEO_OPTIONS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = output.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        audio.bit_rate = AUDIO_BITRATE
        audio_time_base = Fraction(1, SAMPLE_RATE)
        for n in range(max(1, math.ceil(end * fps))):
            t = n / fps
            inputs, pictures = _inputs_at(t, videos, audios, names)
            kind: LayoutKind = "content" if any(i.is_content for i in inputs) else "grid"
            tiles = compute_layout(kind, inputs, (width, height))
            frame = compositor.compose(tiles, pictures)
            frame.pts = n
            frame.time_base = Fraction(1, fps)
            output.mux(video.encode(frame))

            start = n * samples_per_frame
            mix = np.zeros(samples_per_frame, np.int32)
            for reader in audios:
                reader.add_into(mix, start)
            sound = av.AudioFrame.from_ndarray(
                soft_limit(mix).reshape(1, -1), format="s16", layout="mono"
            )
            sound.sample_rate = SAMPLE_RATE
            sound.pts = start
            sound.time_base = audio_time_base
            output.mux(audio.encode(sound))
        output.mux(video.encode(None))
        output.mux(audio.encode(None))


def _inputs_at(
    t: float, videos: list[_VideoReader], audios: list[_AudioReader], names: list[str]
) -> tuple[list[LayoutInput], dict[str, av.VideoFrame | None]]:
    """Who is in the picture at ``t``, and their pictures (None: a name tile)."""
    pictures: dict[str, av.VideoFrame | None] = {}
    present: set[str] = set()
    contents: list[LayoutInput] = []
    for reader in videos:
        if not reader.start <= t < reader.shown_until:
            continue
        name = reader.track.participant_name
        picture = reader.picture_at(t)
        if reader.track.source == "content":
            key = f"content:{name}:{reader.start}"
            contents.append(LayoutInput(key, name, is_content=True))
            pictures[key] = picture
        else:
            present.add(name)
            if picture is not None or pictures.get(f"person:{name}") is None:
                pictures[f"person:{name}"] = picture
    for audio_reader in audios:
        if audio_reader.start <= t <= audio_reader.end:
            present.add(audio_reader.track.participant_name)
    people = [LayoutInput(f"person:{name}", name) for name in names if name in present]
    return people + contents, pictures
