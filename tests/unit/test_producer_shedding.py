"""A producer that runs behind its ingress sheds video once, for every consumer alike.

Real producers and consumers; only the subscribers' transports are lists of the packets sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mcu.media import CodecInfo, IncomingPacket, TrackSource
from mcu.sfu.consumer import Consumer, ConsumerLeg
from mcu.sfu.producer import Producer
from mcu.sfu.rtp import parse_fixed_header
from mcu.sfu.shedding import RESUME_BELOW, SHED_ABOVE

VP8 = CodecInfo("video/VP8", 90000)
OPUS = CodecInfo("audio/opus", 48000, 2)
KEYFRAME = bytes([0x10, 0x00, 0x00, 0x00])  # VP8 descriptor S=1, then P=0: a keyframe starts
DELTA = bytes([0x10, 0x01, 0x00, 0x00])
MIDDLE = bytes([0x00, 0x00, 0x00, 0x00])  # a packet inside a frame
BEHIND = SHED_ABOVE + 0.2
CAUGHT_UP = RESUME_BELOW / 2


@dataclass
class Wire:
    """A subscriber's transport: every packet sent, as (sequence, timestamp, payload)."""

    sent: list[tuple[int, int, bytes]] = field(default_factory=list)

    def ready(self) -> bool:
        return True

    def send(self, header: bytes, payload: bytes | bytearray = b"") -> bool:
        packet = header + payload
        _, _, sequence, timestamp, _, offset = parse_fixed_header(packet)
        self.sent.append((sequence, timestamp, packet[offset:]))
        return True


@dataclass
class Recording:
    """A sink that must keep everything (what a recording is)."""

    packets: list[IncomingPacket] = field(default_factory=list)
    resyncs: int = 0

    def on_packet(self, packet: IncomingPacket) -> None:
        self.packets.append(packet)

    def on_sender_report(self, ntp_time: int, rtp_time: int) -> None:
        pass

    def resync(self) -> None:
        self.resyncs += 1

    def close(self) -> None:
        pass


class Lecture:
    """One publisher's camera and microphone, two viewers of each, and a recording."""

    def __init__(self) -> None:
        self.keyframe_requests = 0
        self.video = Producer("cam", "p", TrackSource.CAMERA, VP8, self._pli)
        self.audio = Producer("mic", "p", TrackSource.MICROPHONE, OPUS, lambda: None)
        self.video_wires = [Wire(), Wire()]
        self.audio_wires = [Wire(), Wire()]
        for i, wire in enumerate(self.video_wires):
            leg = ConsumerLeg(payload_type=96, ssrc=0x100 + i, mid="1")
            consumer = Consumer(leg, wire, self.video.history, self.video, video=True)
            self.video.add_sink(consumer)
        for i, wire in enumerate(self.audio_wires):
            leg = ConsumerLeg(payload_type=111, ssrc=0x200 + i, mid="0")
            self.audio.add_sink(Consumer(leg, wire, self.audio.history, self.audio, video=False))
        self.recording = Recording()
        self.video.add_sink(self.recording, whole=True)
        self._seq = 1000
        self._audio_seq = 500
        self.now = 10.0

    def _pli(self) -> None:
        self.keyframe_requests += 1

    def frame(self, frame: int, keyframe: bool, lateness: float, packets: int = 3) -> None:
        """One video frame (30 fps) and the audio of its 33 ms, processed ``lateness`` late."""
        self.now += 1 / 30
        for i in range(packets):
            payload = (KEYFRAME if keyframe else DELTA) if i == 0 else MIDDLE
            self._seq += 1
            self.video.on_rtp(
                self._seq, frame * 3000, i == packets - 1, payload, None, self.now,
                lateness=lateness,
            )  # fmt: skip
        self._audio_seq += 1
        self.audio.on_rtp(
            self._audio_seq, frame * 1600, False, b"opus", 30, self.now, lateness=lateness
        )


def test_behind_no_consumer_gets_delta_frames_then_all_resume_at_one_keyframe() -> None:
    lecture = Lecture()
    lecture.frame(0, True, 0.01)
    lecture.frame(1, False, 0.01)
    sent_before = [len(w.sent) for w in lecture.video_wires]
    assert sent_before == [6, 6]

    for frame in range(2, 8):  # the server falls behind: delta frames are not forwarded
        lecture.frame(frame, False, BEHIND)
    assert [len(w.sent) for w in lecture.video_wires] == sent_before
    assert lecture.video.frames_shed == 6 and lecture.video.shedding
    requests_while_behind = lecture.keyframe_requests
    for frame in range(8, 10):  # caught up: still nothing until a keyframe, which is asked for
        lecture.frame(frame, False, CAUGHT_UP)
    assert [len(w.sent) for w in lecture.video_wires] == sent_before
    assert lecture.keyframe_requests > requests_while_behind

    lecture.frame(10, True, CAUGHT_UP)
    lecture.frame(11, False, CAUGHT_UP)
    assert not lecture.video.shedding
    for wire in lecture.video_wires:
        # Numbered without a gap: the subscriber has nothing to NACK.
        sequences = [sequence for sequence, _, _ in wire.sent]
        assert sequences == list(range(sequences[0], sequences[0] + 12))
        assert wire.sent[6][2] == KEYFRAME
    # The same keyframe for both viewers (their timestamps differ by their own offsets only).
    offsets = [w.sent[6][1] - w.sent[0][1] for w in lecture.video_wires]
    assert offsets[0] == offsets[1] == 10 * 3000


def test_audio_and_the_recording_keep_everything_while_video_is_shed() -> None:
    lecture = Lecture()
    for frame in range(12):
        lecture.frame(frame, frame == 0, 0.01 if frame < 2 else BEHIND)
    for wire in lecture.audio_wires:
        assert len(wire.sent) == 12
    assert len(lecture.recording.packets) == 36
    assert lecture.recording.resyncs == 0


def test_shed_packets_are_not_kept_for_repair() -> None:
    lecture = Lecture()
    lecture.frame(0, True, 0.01)
    lecture.frame(1, False, BEHIND)
    assert lecture.video.history.get(1001) is not None  # the keyframe's first packet
    assert lecture.video.history.get(1004) is None  # the shed delta frame's
