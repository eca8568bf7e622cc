"""SlideTrack feeding a real Producer: keyframes on show and on request, each followed at once by
small follow-up frames, slow refreshes, and frames that decode back to the page.

The pages are small (320x180) so the encoder is quick; waits are bounded polls.
"""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import av
import numpy as np
import numpy.typing as npt
import pytest
from aiortc.codecs import H264Decoder, Vp8Decoder
from aiortc.codecs.h264 import h264_depayload
from aiortc.codecs.vpx import vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from PIL import Image, ImageDraw

from mcu.media import CodecInfo, IncomingPacket, TrackSource
from mcu.sfu.producer import Producer
from mcu.slides.slideschedule import FOLLOW_UP_GAPS, REFRESH_INTERVAL
from mcu.slides.slidetrack import SlideTrack

SIZE = (320, 180)
CLOCK = 90000
VP8 = CodecInfo("video/VP8", 90000)
H264 = CodecInfo(
    "video/H264",
    90000,
    parameters=(
        ("level-asymmetry-allowed", "1"),
        ("packetization-mode", "1"),
        ("profile-level-id", "42e01f"),
    ),
)


def page(text: str, background: tuple[int, int, int]) -> npt.NDArray[np.uint8]:
    """A slide: a coloured page with a title and some lines of text."""
    image = Image.new("RGB", SIZE, background)
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 10, 310, 40), fill=(255, 255, 255))
    draw.text((16, 16), text, fill=(0, 0, 0))
    for line in range(6):
        draw.text((16, 60 + 18 * line), f"{line}: Hb 13.{line} g/dL  WBC 6.{line}", fill=(0, 0, 0))
    return np.asarray(image)


@dataclass
class Frame:
    """One encoded frame, reassembled from the packets the producer forwarded."""

    packets: list[IncomingPacket]

    @property
    def keyframe(self) -> bool:
        return self.packets[0].keyframe

    @property
    def size(self) -> int:
        return sum(len(packet.payload) for packet in self.packets)

    @property
    def arrival(self) -> float:
        return self.packets[-1].arrival

    @property
    def timestamp(self) -> int:
        return self.packets[0].timestamp


@dataclass
class Collector:
    """A packet sink that groups what it receives into frames (ended by the marker bit)."""

    frames: list[Frame] = field(default_factory=list)
    packets: list[IncomingPacket] = field(default_factory=list)
    pending: list[IncomingPacket] = field(default_factory=list)

    def on_packet(self, packet: IncomingPacket) -> None:
        self.packets.append(packet)
        self.pending.append(packet)
        if packet.marker:
            self.frames.append(Frame(self.pending))
            self.pending = []

    def on_sender_report(self, ntp_time: int, rtp_time: int) -> None:
        pass

    def close(self) -> None:
        pass

    async def wait_frames(self, count: int, timeout: float) -> list[Frame]:
        """Wait (at most ``timeout`` seconds) until ``count`` frames in all have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.frames) < count:
            assert time.monotonic() < deadline, f"{len(self.frames)} of {count} frames arrived"
            await asyncio.sleep(0.005)
        return self.frames[:count]

    async def wait_keyframe(self, start: int, timeout: float) -> int:
        """Wait (at most ``timeout`` s) for a keyframe at index ``start`` or later; its index."""
        deadline = time.monotonic() + timeout
        while True:
            found = [i for i in range(start, len(self.frames)) if self.frames[i].keyframe]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"no keyframe among frames from {start}"
            await asyncio.sleep(0.005)


@dataclass
class Rig:
    producer: Producer
    track: SlideTrack
    sink: Collector


async def rig(codec: CodecInfo) -> Rig:
    producer = Producer("slides", "p1", TrackSource.CONTENT, codec, lambda: None)
    track = SlideTrack(producer, codec, SIZE)
    producer.send_keyframe_request = track.request_keyframe
    sink = Collector()
    producer.add_sink(sink)
    return Rig(producer, track, sink)


@pytest.fixture
async def vp8() -> AsyncIterator[Rig]:
    setup = await rig(VP8)
    setup.track.start()
    yield setup
    await setup.track.stop()
    setup.producer.close()


def decoder_for(codec: CodecInfo) -> Callable[[Frame], npt.NDArray[np.uint8]]:
    """Depacketise with aiortc and decode with libvpx / FFmpeg's H.264, returning RGB."""
    decoder = Vp8Decoder() if codec is VP8 else H264Decoder()
    depayload = vp8_depayload if codec is VP8 else h264_depayload

    def decode(frame: Frame) -> npt.NDArray[np.uint8]:
        data = b"".join(depayload(packet.payload) for packet in frame.packets)
        (picture,) = decoder.decode(JitterFrame(data=data, timestamp=frame.packets[0].timestamp))
        assert isinstance(picture, av.VideoFrame)
        rgb: npt.NDArray[np.uint8] = picture.to_ndarray(format="rgb24")
        return rgb

    return decode


def mean_abs_diff(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    """Mean absolute difference per channel; ~2.6 for these pages after 4:2:0 and quantising."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


async def test_show_sends_a_keyframe_that_decodes_to_the_page(vp8: Rig) -> None:
    slide = page("Slide 1", (40, 90, 160))
    shown = time.monotonic()
    await vp8.track.show(slide)
    (frame,) = await vp8.sink.wait_frames(1, timeout=2.0)
    assert frame.arrival - shown < 0.5
    assert frame.keyframe and vp8.sink.packets[0].keyframe
    assert len(frame.packets) > 1  # several packets: marker on the last only
    assert [p.marker for p in frame.packets] == [False] * (len(frame.packets) - 1) + [True]
    assert len({p.timestamp for p in frame.packets}) == 1
    sequences = [p.ext_sequence for p in vp8.sink.packets]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    assert mean_abs_diff(decoder_for(VP8)(frame), slide) < 4.0
    assert vp8.track.keyframes_sent == 1 and vp8.track.last_keyframe_bytes == frame.size


async def test_unchanged_page_is_refreshed_every_second_with_tiny_frames(vp8: Rig) -> None:
    slide = page("Refresh", (200, 200, 200))
    await vp8.track.show(slide)
    burst = 1 + len(FOLLOW_UP_GAPS)  # the keyframe and its follow-ups
    timeout = sum(FOLLOW_UP_GAPS) + 2 * REFRESH_INTERVAL + 1.5
    frames = await vp8.sink.wait_frames(burst + 2, timeout=timeout)
    key, refreshes = frames[0], frames[burst:]
    assert key.keyframe and not any(frame.keyframe for frame in frames[1:])
    # Once the follow-ups are out, one frame per REFRESH_INTERVAL of RTP time (90 kHz).
    gap = (refreshes[1].timestamp - refreshes[0].timestamp) / CLOCK
    assert gap == pytest.approx(REFRESH_INTERVAL, abs=0.15)
    # RTP time follows the wall clock.
    assert gap == pytest.approx(refreshes[1].arrival - refreshes[0].arrival, abs=0.15)
    for frame in frames[1:]:
        assert frame.size < key.size / 10
        assert frame.size < 1000
    decode = decoder_for(VP8)
    for frame in frames:
        picture = decode(frame)
    assert mean_abs_diff(picture, slide) < 4.0


async def test_a_new_page_is_followed_at_once_by_a_small_frame(vp8: Rig) -> None:
    """A receiver that passes a frame to its decoder only when the next frame begins (aiortc's
    jitter buffer does) shows a new page when the frame after its keyframe arrives: that frame
    must be a quick follow-up, not the refresh a second later."""
    first, second = page("Page 1", (250, 250, 250)), page("Page 2", (10, 10, 10))
    await vp8.track.show(first)
    await vp8.sink.wait_frames(1, timeout=2.0)
    await vp8.track.show(second)
    key = await vp8.sink.wait_keyframe(len(vp8.sink.frames), timeout=2.0)
    frames = vp8.sink.frames
    await vp8.sink.wait_frames(key + 2, timeout=2 * REFRESH_INTERVAL + 1.0)
    # In the sender's own media time: the frame after the keyframe is not the refresh.
    first_gap = (frames[key + 1].timestamp - frames[key].timestamp) / CLOCK
    assert first_gap < REFRESH_INTERVAL / 2
    # Every follow-up comes before the first slow refresh would have; then the pace slows.
    timeout = sum(FOLLOW_UP_GAPS) + REFRESH_INTERVAL + 2.0
    await vp8.sink.wait_frames(key + 2 + len(FOLLOW_UP_GAPS), timeout=timeout)
    after = frames[key + 1 : key + 2 + len(FOLLOW_UP_GAPS)]
    assert not any(frame.keyframe for frame in after)
    offsets = [(frame.timestamp - frames[key].timestamp) / CLOCK for frame in after]
    assert offsets[len(FOLLOW_UP_GAPS) - 1] < REFRESH_INTERVAL, offsets
    assert offsets[-1] - offsets[-2] > REFRESH_INTERVAL / 2, offsets
    assert all(frame.size < frames[key].size / 10 for frame in after)
    # The follow-up carries the new page (nothing changed since the keyframe).
    decode = decoder_for(VP8)
    for frame in frames[: key + 2]:
        picture = decode(frame)
    assert mean_abs_diff(picture, second) < 4.0


async def test_keyframe_request_through_the_producer(vp8: Rig) -> None:
    await vp8.track.show(page("Late joiner", (20, 120, 60)))
    await vp8.sink.wait_frames(1, timeout=2.0)
    asked = time.monotonic()
    vp8.producer.request_keyframe(asked)  # what a consumer does when its subscriber joins
    index = await vp8.sink.wait_keyframe(1, timeout=1.0)
    again = vp8.sink.frames[index]
    assert again.arrival - asked < 0.25
    assert vp8.producer.keyframe_requests_sent == 1
    # The late joiner decodes the page from this keyframe alone...
    assert mean_abs_diff(decoder_for(VP8)(again), page("Late joiner", (20, 120, 60))) < 4.0
    # ...and, like a page turn, it is followed at once, so receivers can show it straight away.
    await vp8.sink.wait_frames(index + 2, timeout=2 * REFRESH_INTERVAL + 1.0)
    follow_up = vp8.sink.frames[index + 1]
    assert not follow_up.keyframe
    assert (follow_up.timestamp - again.timestamp) / CLOCK < REFRESH_INTERVAL / 2


async def test_new_page_goes_out_as_a_keyframe(vp8: Rig) -> None:
    first, second = page("Page 1", (250, 250, 250)), page("Page 2", (10, 10, 10))
    await vp8.track.show(first)
    await vp8.sink.wait_frames(1, timeout=2.0)
    await vp8.track.show(second)
    one, two = await vp8.sink.wait_frames(2, timeout=1.0)
    assert one.keyframe and two.keyframe
    decode = decoder_for(VP8)
    assert mean_abs_diff(decode(one), first) < 4.0
    assert mean_abs_diff(decode(two), second) < 4.0
    assert mean_abs_diff(decode(two), first) > 100  # and not the old page


async def test_stop_ends_the_packets() -> None:
    setup = await rig(VP8)
    await setup.track.show(page("Before start", (0, 0, 0)))  # shown before start: sent on start
    setup.track.start()
    await setup.sink.wait_frames(1, timeout=2.0)
    await setup.track.stop()
    sent = len(setup.sink.packets)
    setup.track.request_keyframe()
    await asyncio.sleep(0.2)
    assert len(setup.sink.packets) == sent
    assert not setup.producer._closed  # the producer is the caller's to close
    setup.producer.close()


async def test_a_stopped_track_is_freed_without_the_cycle_collector() -> None:
    # A 1080p libvpx encoder holds ~80 MB. A stopped track kept alive by a reference cycle
    # waits for a full collection, which a busy server runs rarely: every slide show that
    # ended held its encoder until then (+80 MB per show in the soak benchmark).
    producer = Producer("slides", "p1", TrackSource.CONTENT, VP8, lambda: None)
    sink = Collector()
    producer.add_sink(sink)
    gc.disable()
    try:
        track = SlideTrack(producer, VP8, SIZE)
        track.start()
        await track.show(page("Freed", (20, 60, 20)))
        await sink.wait_frames(1, timeout=2.0)
        await track.stop()
        freed = weakref.ref(track)
        del track
        assert freed() is None, [type(r).__name__ for r in gc.get_referrers(freed())]
    finally:
        gc.enable()
        producer.close()


async def test_a_track_started_again_after_stop_sends_its_page(vp8: Rig) -> None:
    slide = page("Again", (30, 30, 90))
    await vp8.track.show(slide)
    await vp8.sink.wait_frames(1, timeout=2.0)
    await vp8.track.stop()
    sent = len(vp8.sink.frames)
    vp8.track.start()  # a new encoder: the page goes out as a keyframe that decodes
    index = await vp8.sink.wait_keyframe(sent, timeout=2.0)
    assert mean_abs_diff(decoder_for(VP8)(vp8.sink.frames[index]), slide) < 4.0


async def test_wrong_page_size_is_refused(vp8: Rig) -> None:
    with pytest.raises(ValueError):
        await vp8.track.show(np.zeros((180, 321, 3), dtype=np.uint8))
    with pytest.raises(ValueError):
        SlideTrack(vp8.producer, CodecInfo("audio/opus", 48000, 2), SIZE)


async def test_h264_keyframe_is_detected_and_decodes() -> None:
    setup = await rig(H264)
    slide = page("H.264", (90, 30, 30))
    setup.track.start()
    try:
        await setup.track.show(slide)
        (frame,) = await setup.sink.wait_frames(1, timeout=2.0)
        assert frame.keyframe
        decode = decoder_for(H264)
        assert mean_abs_diff(decode(frame), slide) < 4.0
        # The frame after the keyframe is a quick P-frame follow-up of the same picture.
        _, follow_up = await setup.sink.wait_frames(2, timeout=2 * REFRESH_INTERVAL + 1.0)
        assert not follow_up.keyframe
        assert (follow_up.timestamp - frame.timestamp) / CLOCK < REFRESH_INTERVAL / 2
        assert mean_abs_diff(decode(follow_up), slide) < 4.0
        setup.track.request_keyframe()
        await setup.sink.wait_frames(3, timeout=2 * REFRESH_INTERVAL + 1.0)
        assert any(frame.keyframe for frame in setup.sink.frames[2:])
    finally:
        await setup.track.stop()
        setup.producer.close()
