"""One track to one fragmented MP4 file, written as its packets arrive.

A :class:`TrackWriter` is a :class:`~mcu.media.PacketSink` like any consumer: attached to a
producer, it reassembles frames on the event loop (cheap, pure: :mod:`.frames`) and hands each
finished frame to a thread of its own, one frame after another, where all muxing, transcoding and
file I/O happen.

What goes into the file:

- **H.264** is copied as it arrived (Annex-B access units, SPS/PPS in-band and as the stream's
  ``avcC``, which PyAV extracts from the first keyframe): no decoding, no quality loss.
- **VP8** cannot go into MP4, so it is decoded (FFmpeg's VP8 decoder) and re-encoded to H.264
  (libx264, ``veryfast``, ``zerolatency``: no B-frames, no lookahead delay) at the size of the
  first picture (later pictures of another size are scaled to it).
- **Opus** is copied as Opus. MP4 holds Opus (``Opus``/``dOps``), the copy is lossless and costs
  nothing, and browsers, VLC and ffmpeg play it. AAC would only be needed for players that lack
  Opus (old Safari, some hardware players); transcoding to it is not done here. The composite
  (:mod:`.composite`) is AAC, as it is meant for the widest range of players.

The file is fragmented (``frag_keyframe+empty_moov+default_base_moof``, a fragment at least every
second of media), and the output is flushed after every fragment, which also seals an encrypted
file's chunk however short it is. So a process killed with SIGKILL loses the fragment being built
(at most a second of media, whatever the bitrate) and possibly a torn tail, which recovery cuts
off (:mod:`.salvage`). The muxer cuts a fragment when the next sample arrives, so a track that
stops sending keeps its last fragment pending until it sends again or the file is finished.
``delay_moov`` holds the ``moov`` back until the first fragment is cut, so the track's start on
the recording's time line is known and written as an edit list: a participant who joined 40 s
into the session has a file whose ``start_time`` is 40 s.

Output goes to any binary file object; only ``write`` (and ``flush``/``close`` when present) is
used, never ``seek``, so it may encrypt or stream. A write error (disk full, ...) stops the writer:
:attr:`TrackWriter.error` says why and ``on_error`` is called on the event loop; nothing is raised
into the producer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from fractions import Fraction
from typing import Protocol

import av
from av.container import OutputContainer
from av.stream import Stream
from av.video.stream import VideoStream

from mcu.infra.metrics import new_metrics_id
from mcu.media import CodecInfo, IncomingPacket, KeyframeSource
from mcu.recorder.frames import EncodedFrame, FrameAssembler, assembler_for
from mcu.recorder.timeline import RecordingClock, RtpTimeline

logger = logging.getLogger(__name__)

MP4_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof+delay_moov",
    "frag_duration": "1000000",
}
"Muxer options: fragments of at most 1 s, cut at keyframes; the edit list known before the moov."
MAX_QUEUED_FRAMES = 90
"""Frames waiting for the writer's thread; beyond this (a slow disk, a slow transcode) frames are
dropped, and video waits for the next keyframe."""
TRANSCODE_OPTIONS = {"preset": "veryfast", "tune": "zerolatency", "crf": "23"}
"libx264 settings for VP8 tracks: real-time speed, no B-frames, good quality at any bitrate."
TRANSCODE_GOP = 60
"A keyframe every 60 pictures (2 s at 30 fps): seeking, and fragments cut on keyframes."


class BinaryOutput(Protocol):
    """Where a writer's bytes go: a plain file, or an encrypting writer."""

    def write(self, data: bytes, /) -> object:
        """Take the bytes; raise OSError on failure."""


class _CountingOutput:
    """What PyAV writes to: counts bytes, has no ``seek`` (so the muxer never seeks)."""

    def __init__(self, output: BinaryOutput) -> None:
        self._output = output
        self.written = 0
        self.flushed = 0

    def write(self, data: bytes) -> int:
        self._output.write(data)
        self.written += len(data)
        return len(data)

    def flush_if_written(self) -> None:
        """Flush after a fragment went out: the muxer hands over only whole fragments, so what
        reaches the disk (and each sealed chunk of an encrypted file) ends on one."""
        if self.written != self.flushed:
            self.flushed = self.written
            flush = getattr(self._output, "flush", None)
            if flush is not None:
                flush()


class _Muxer:
    """The thread side of one writer: a container opened on the first frame, then frames into it.

    Subclasses decide the stream; every method runs in the writer's thread.
    """

    def __init__(self, output: _CountingOutput, clock_rate: int) -> None:
        self.output = output
        self.time_base = Fraction(1, clock_rate)
        self.container: OutputContainer | None = None
        self.stream: Stream | None = None
        self.frames_written = 0

    def open(self) -> OutputContainer:
        container = av.open(self.output, "w", format="mp4", options=MP4_OPTIONS)
        self.container = container
        return container

    def write(self, frame: EncodedFrame, pts: int) -> None:
        raise NotImplementedError

    def mux(self, packet: av.Packet[Stream]) -> None:
        assert self.container is not None
        self.container.mux_one(packet)
        self.output.flush_if_written()

    def finish(self) -> None:
        if self.container is not None:
            container, self.container = self.container, None
            container.close()  # the last fragment, then the mfra index
        self.output.flush_if_written()

    def abandon(self) -> None:
        """After an error: release the container without writing anything more that matters."""
        container, self.container = self.container, None
        if container is not None:
            try:
                container.close()
            except Exception:  # the output is already broken
                pass


class _H264Copy(_Muxer):
    """H.264 access units copied into the file as they came."""

    def write(self, frame: EncodedFrame, pts: int) -> None:
        if self.container is None:
            width, height = _h264_size(frame.data)
            container = self.open()
            self.stream = container.add_mux_stream("h264", width=width, height=height)
            self.stream.time_base = self.time_base
        packet: av.Packet[Stream] = av.Packet(frame.data)
        assert self.stream is not None
        packet.stream = self.stream
        packet.time_base = self.time_base
        packet.pts = packet.dts = pts
        packet.is_keyframe = frame.keyframe
        self.mux(packet)
        self.frames_written += 1


def _h264_size(access_unit: bytes) -> tuple[int, int]:
    """Picture size of a keyframe access unit, for the MP4 track header (decodes that one frame)."""
    decoder = av.CodecContext.create("h264", "r")
    frames = decoder.decode(av.Packet(access_unit)) + decoder.decode(None)
    if not frames:
        raise ValueError("the first H.264 keyframe does not decode")
    frame = frames[0]
    assert isinstance(frame, av.VideoFrame)
    return frame.width, frame.height


class _Vp8Transcode(_Muxer):
    """VP8 frames decoded and re-encoded to H.264 at the size of the first picture."""

    def __init__(self, output: _CountingOutput, clock_rate: int) -> None:
        super().__init__(output, clock_rate)
        self.decoder = av.CodecContext.create("vp8", "r")
        self.encoder: VideoStream | None = None
        self.decode_errors = 0

    def write(self, frame: EncodedFrame, pts: int) -> None:
        try:
            pictures = self.decoder.decode(av.Packet(frame.data))
        except av.FFmpegError:
            self.decode_errors += 1  # a damaged picture is skipped, not fatal
            return
        for picture in pictures:
            assert isinstance(picture, av.VideoFrame)
            encoder = self.encoder
            if encoder is None:
                container = self.open()
                encoder = container.add_stream("libx264", rate=30, options=TRANSCODE_OPTIONS)
                encoder.width = picture.width // 2 * 2
                encoder.height = picture.height // 2 * 2
                encoder.pix_fmt = "yuv420p"
                encoder.time_base = self.time_base
                encoder.codec_context.time_base = self.time_base
                encoder.codec_context.gop_size = TRANSCODE_GOP
                self.encoder = self.stream = encoder
            if (picture.width, picture.height, picture.format.name) != (
                encoder.width,
                encoder.height,
                "yuv420p",
            ):
                picture = picture.reformat(encoder.width, encoder.height, "yuv420p")
            picture.pts = pts
            picture.time_base = self.time_base
            for packet in encoder.encode(picture):
                self.mux(packet)
            self.frames_written += 1

    def finish(self) -> None:
        if self.encoder is not None and self.container is not None:
            for packet in self.encoder.encode(None):
                self.mux(packet)
        super().finish()


OPUS_FRAME = 960
"Samples of a 20 ms Opus frame at 48 kHz, WebRTC's packet duration."


class _OpusCopy(_Muxer):
    """Opus packets copied into the file as they came."""

    def __init__(self, output: _CountingOutput, clock_rate: int, channels: int) -> None:
        super().__init__(output, clock_rate)
        self.channels = channels

    def write(self, frame: EncodedFrame, pts: int) -> None:
        if self.container is None:
            container = self.open()
            # A libopus stream only to have PyAV write the OpusHead (dOps) the MP4 needs; its
            # encoder is opened but never fed.
            layout = "stereo" if self.channels == 2 else "mono"
            self.stream = container.add_stream("libopus", rate=48000, layout=layout)
            self.stream.time_base = self.time_base
        packet: av.Packet[Stream] = av.Packet(frame.data)
        assert self.stream is not None
        packet.stream = self.stream
        packet.time_base = self.time_base
        packet.pts = packet.dts = pts
        packet.duration = OPUS_FRAME
        self.mux(packet)
        self.frames_written += 1


class TrackWriter:
    """Records one producer's track into one fragmented MP4 written to ``output``.

    Attach it with ``producer.add_sink(writer)``. ``keyframes`` (normally the producer) is asked
    for a keyframe while video waits for one, at the start and after loss. Stop with
    :meth:`aclose` (or :meth:`close`, which the producer calls when the track ends; it only
    schedules the end of the file). ``output`` is closed with the file when ``close_output``.
    """

    def __init__(
        self,
        codec: CodecInfo,
        output: BinaryOutput,
        clock: RecordingClock,
        *,
        keyframes: KeyframeSource | None = None,
        on_error: Callable[[TrackWriter], None] | None = None,
        close_output: bool = True,
        name: str = "track",
    ) -> None:
        self.codec = codec
        self.name = name
        self.metrics_id = new_metrics_id()  # the metrics' sums tell writers apart by it
        self.kind = codec.kind
        self._assembler: FrameAssembler = assembler_for(codec.mime_type)
        self._timeline = RtpTimeline(clock, codec.clock_rate)
        self._clock_rate = codec.clock_rate
        self._output = output
        self._counting = _CountingOutput(output)
        mime = codec.mime_type.lower()
        self._muxer: _Muxer
        if mime == "video/h264":
            self._muxer = _H264Copy(self._counting, codec.clock_rate)
        elif mime == "video/vp8":
            self._muxer = _Vp8Transcode(self._counting, codec.clock_rate)
        else:
            self._muxer = _OpusCopy(self._counting, codec.clock_rate, codec.channels or 2)
        self._keyframes = keyframes
        self._on_error = on_error
        self._close_output = close_output
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"recorder-{name}"
        )
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._finished: concurrent.futures.Future[None] | None = None
        self._last_pts: int | None = None
        self._first_pts: int | None = None
        self._submitted = 0
        self._done = 0
        self.error: str | None = None
        "Why the writer stopped itself (a write error, ...), or None."
        self._frames_skipped = 0
        self.sender_report: tuple[int, int] | None = None
        "The publisher's last (NTP, RTP) mapping; kept for the record, the time line uses arrival."

    # -- counters -----------------------------------------------------------------------------

    @property
    def frames_written(self) -> int:
        """Frames in the file (pictures or Opus packets)."""
        return self._muxer.frames_written

    @property
    def frames_dropped(self) -> int:
        """Frames not written: incomplete, before a keyframe, out of order, or queue full."""
        return self._assembler.dropped_frames + self._frames_skipped

    @property
    def bytes_written(self) -> int:
        """Bytes handed to ``output`` so far (whole fragments)."""
        return self._counting.written

    @property
    def started_at(self) -> float | None:
        """Offset in seconds of the track's first sample from the recording's start."""
        return None if self._first_pts is None else self._first_pts / self._clock_rate

    @property
    def duration(self) -> float:
        """Seconds from the first sample to the last one handed to the file."""
        if self._first_pts is None or self._last_pts is None:
            return 0.0
        return (self._last_pts - self._first_pts) / self._clock_rate

    # -- PacketSink ---------------------------------------------------------------------------

    def on_packet(self, packet: IncomingPacket) -> None:
        """Assemble frames; hand each finished one to the writer's thread. Never raises."""
        if self._finished is not None or self.error is not None:
            return
        try:
            frame = self._assembler.push(packet)
            if self._assembler.waiting_for_keyframe and self._keyframes is not None:
                self._keyframes.request_keyframe(packet.arrival)  # the producer rate-limits
            if frame is not None:
                self._submit(frame)
        except Exception:
            logger.exception("recorder %s: packet %d failed", self.name, packet.ext_sequence)

    def on_sender_report(self, ntp_time: int, rtp_time: int) -> None:
        self.sender_report = (ntp_time, rtp_time)

    def resync(self) -> None:
        """The producer resumes after a pause: a gap, then a fresh start at a keyframe."""
        self._assembler.restart()

    def close(self) -> None:
        """Finish the file in the writer's thread (last fragment, index); returns at once."""
        if self._finished is not None:
            return
        self._finished = self._executor.submit(self._finish)
        self._executor.shutdown(wait=False)

    async def aclose(self) -> None:
        """Finish the file and wait until it is complete on ``output``. Never raises."""
        self.close()
        assert self._finished is not None
        await asyncio.wrap_future(self._finished)

    # -- loop side ----------------------------------------------------------------------------

    def _submit(self, frame: EncodedFrame) -> None:
        pts = self._timeline.pts(frame.timestamp, frame.arrival)
        if self._last_pts is not None and pts <= self._last_pts:
            self._frames_skipped += 1  # MP4 needs increasing times
            return
        if self._submitted - self._done >= MAX_QUEUED_FRAMES:
            self._frames_skipped += 1
            self._assembler.restart()  # video resumes at a keyframe
            return
        if self._first_pts is None:
            self._first_pts = pts
        self._last_pts = pts
        self._submitted += 1
        self._executor.submit(self._write, frame, pts)

    # -- writer thread ------------------------------------------------------------------------

    def _write(self, frame: EncodedFrame, pts: int) -> None:
        try:
            if self.error is None:
                self._muxer.write(frame, pts)
        except Exception as exc:
            self._fail(exc)
        finally:
            self._done += 1

    def _finish(self) -> None:
        try:
            if self.error is None:
                self._muxer.finish()
                if self._close_output:
                    _close(self._output)
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        if self.error is not None:
            return
        self.error = f"{type(exc).__name__}: {exc}"
        logger.error("recorder %s stopped: %s", self.name, self.error)
        self._muxer.abandon()
        if self._close_output:
            try:
                _close(self._output)
            except Exception:
                pass
        if self._on_error is None:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._notify_error)
        else:
            self._notify_error()

    def _notify_error(self) -> None:
        if self._on_error is not None:
            try:
                self._on_error(self)
            except Exception:
                logger.exception("recorder %s: on_error failed", self.name)


def _close(output: BinaryOutput) -> None:
    close = getattr(output, "close", None)
    if close is not None:
        close()
