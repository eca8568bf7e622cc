"""The relay between workers: wire format with literal packets, then real UDP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import uvloop

from mcu.contracts.cluster import CodecDescription, StreamDescription
from mcu.media import CodecInfo, IncomingPacket, TrackSource
from mcu.sfu.producer import Producer
from mcu.sfu.relay import (
    AUDIO_PAYLOAD_TYPE,
    VIDEO_PAYLOAD_TYPE,
    RelayEndpoint,
    SsrcAllocator,
    assign_ssrc,
    parse_relay_packet,
    picture_loss_indication,
    sender_report,
)
from mcu.sfu.relaywire import codec_from_description, source_from_description, stream_description
from mcu.sfu.rtp import build_header

H264 = CodecInfo(
    "video/H264",
    90000,
    None,
    (("level-asymmetry-allowed", "1"), ("packetization-mode", "1"), ("profile-level-id", "42e01f")),
)
VP8 = CodecInfo("video/VP8", 90000)
OPUS = CodecInfo("audio/opus", 48000, 2, (("minptime", "10"), ("useinbandfec", "1")))
# VP8 payload descriptor S=1, PID=0, then a payload header with P=0: the start of a keyframe.
KEYFRAME = bytes([0x10, 0x00, 0x00, 0x00]) + b"key"
DELTA = bytes([0x10, 0x01, 0x00, 0x00]) + b"delta"


@dataclass
class Sink:
    packets: list[IncomingPacket] = field(default_factory=list)
    reports: list[tuple[int, int]] = field(default_factory=list)

    def on_packet(self, packet: IncomingPacket) -> None:
        self.packets.append(packet)

    def on_sender_report(self, ntp_time: int, rtp_time: int) -> None:
        self.reports.append((ntp_time, rtp_time))

    def resync(self) -> None:
        pass

    def close(self) -> None:
        pass


class Requests:
    """Counts a producer's keyframe requests to its publisher."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait for datagrams on loopback to be delivered and handled."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.001)


def home_producer(codec: CodecInfo = VP8, source: TrackSource = TrackSource.CAMERA) -> Producer:
    return Producer("track-1", "alice", source, codec, Requests())


def edge_producer(description: StreamDescription, **kwargs: float) -> Producer:
    """What an edge builds from a STREAM object of the stage."""
    return Producer(
        description.track_id,
        description.participant_id,
        source_from_description(description),
        codec_from_description(description.codec),
        lambda: None,
        **kwargs,
    )


@pytest.fixture
async def endpoints() -> AsyncIterator[tuple[RelayEndpoint, RelayEndpoint]]:
    home = await RelayEndpoint.open()
    edge = await RelayEndpoint.open()
    yield home, edge
    home.close()
    edge.close()


def relayed(
    home: RelayEndpoint, edge: RelayEndpoint, producer: Producer, **kwargs: float
) -> tuple[Producer, Sink, int]:
    """Forward ``producer`` from ``home`` to an edge producer on ``edge`` with a recording sink."""
    ssrc = assign_ssrc()
    wire = stream_description(producer, ssrc).model_dump_json()
    relayed_producer = edge_producer(StreamDescription.model_validate_json(wire), **kwargs)
    sink = Sink()
    relayed_producer.add_sink(sink)
    edge.receive(home.address, ssrc, relayed_producer)
    home.link(edge.address).forward(producer, ssrc)
    return relayed_producer, sink, ssrc


# -- wire format ----------------------------------------------------------------------------------


def test_relay_packet_is_parsed_with_its_audio_level() -> None:
    data = build_header(111, True, 65535, 0xFFFFFFFF, 1234, bytes((0x10, 42))) + b"opus"
    assert parse_relay_packet(data) == (1234, 65535, 0xFFFFFFFF, True, b"opus", 42)
    assert parse_relay_packet(build_header(96, False, 7, 9, 5, b"") + b"vp8") == (
        5,
        7,
        9,
        False,
        b"vp8",
        None,
    )


def test_audio_level_is_found_among_other_elements_and_padding() -> None:
    # abs-send-time (id 3, 3 bytes), a padding byte, then the level (id 1).
    elements = bytes((0x32, 1, 2, 3, 0, 0x10, 0x80 | 5))
    data = build_header(111, False, 1, 2, 3, elements) + b"x"
    assert parse_relay_packet(data)[4:] == (b"x", 5)
    # No level element in the block.
    assert parse_relay_packet(build_header(111, False, 1, 2, 3, bytes((0x32, 1, 2, 3))))[5] is None


def test_padding_is_stripped_and_garbage_is_refused() -> None:
    padded = bytearray(build_header(96, False, 1, 2, 3, b"") + b"data\x00\x00\x03")
    padded[0] |= 0x20
    assert parse_relay_packet(bytes(padded))[4] == b"data"
    for garbage in (b"", b"\x80\x60", b"\x40" * 12, b"\x90" + b"\x00" * 11):
        with pytest.raises(ValueError):
            parse_relay_packet(garbage)


def test_rtcp_messages() -> None:
    report = sender_report(0xABCDEF01, 0x0102030405060708, 0x11223344, 3, 1000)
    assert struct.unpack("!BBHIQIII", report) == (
        0x80,
        200,
        6,
        0xABCDEF01,
        0x0102030405060708,
        0x11223344,
        3,
        1000,
    )
    assert struct.unpack("!BBHII", picture_loss_indication(77)) == (0x81, 206, 2, 0, 77)


def test_ssrcs_are_unique_and_never_zero() -> None:
    allocate = SsrcAllocator(start=0xFFFFFFFE)
    assert [allocate() for _ in range(3)] == [0xFFFFFFFE, 0xFFFFFFFF, 1]
    assigned = {assign_ssrc() for _ in range(1000)}
    assert len(assigned) == 1000 and 0 not in assigned


def test_stream_description_round_trips_through_json() -> None:
    producer = home_producer(H264, TrackSource.CONTENT)
    description = json.loads(stream_description(producer, 42).model_dump_json())
    assert description == {
        "ssrc": 42,
        "track_id": "track-1",
        "participant_id": "alice",
        "source": "content",
        "codec": {
            "mime_type": "video/H264",
            "clock_rate": 90000,
            "channels": None,
            "parameters": [
                ["level-asymmetry-allowed", "1"],
                ["packetization-mode", "1"],
                ["profile-level-id", "42e01f"],
            ],
        },
    }
    received = StreamDescription.model_validate(description)
    assert codec_from_description(received.codec) == H264
    assert source_from_description(received) is TrackSource.CONTENT
    assert codec_from_description(stream_description(home_producer(OPUS), 1).codec) == OPUS


@pytest.mark.parametrize(
    "codec",
    [
        {"mime_type": "VP8", "clock_rate": 90000},
        {"mime_type": "video/VP8", "clock_rate": "90000"},
        {"mime_type": "video/VP8", "clock_rate": True},
        {"mime_type": "audio/opus", "clock_rate": 48000, "channels": 0},
        {"mime_type": "video/VP8", "clock_rate": 90000, "parameters": [["a"]]},
        {"mime_type": "video/VP8", "clock_rate": 90000, "parameters": {"a": "b"}},
    ],
)
def test_malformed_codec_descriptions_are_refused(codec: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CodecDescription.model_validate(codec)
    stream = json.loads(stream_description(home_producer(), 1).model_dump_json())
    with pytest.raises(ValueError):
        StreamDescription.model_validate(stream | {"codec": codec})
    with pytest.raises(ValueError):
        StreamDescription.model_validate(stream | {"source": "screen"})


# -- over real sockets ----------------------------------------------------------------------------


async def test_video_crosses_the_relay_unchanged(
    endpoints: tuple[RelayEndpoint, RelayEndpoint],
) -> None:
    home, edge = endpoints
    producer = home_producer()
    relayed_producer, sink, _ = relayed(home, edge, producer)
    sent = [
        (1000, 90000, False, KEYFRAME),
        (1001, 90000, True, DELTA),
        (1002, 93000, True, DELTA + b"\xff" * 1100),
        (1004, 96000, True, KEYFRAME),
    ]
    for sequence, timestamp, marker, payload in sent:
        producer.on_rtp(sequence, timestamp, marker, payload, None, 1.0)
    await until(lambda: len(sink.packets) == len(sent))
    assert [(p.ext_sequence, p.timestamp, p.marker, p.payload) for p in sink.packets] == sent
    assert [p.keyframe for p in sink.packets] == [True, False, False, True]
    assert [p.audio_level for p in sink.packets] == [None] * 4
    assert relayed_producer.packets_received == 4
    link = home.link(edge.address)
    assert link.packets_sent == 4 and link.packets_dropped == 0


async def test_audio_levels_cross_the_relay(
    endpoints: tuple[RelayEndpoint, RelayEndpoint],
) -> None:
    home, edge = endpoints
    producer = home_producer(OPUS, TrackSource.MICROPHONE)
    relayed_producer, sink, _ = relayed(home, edge, producer)
    assert relayed_producer.codec == OPUS and relayed_producer.source is TrackSource.MICROPHONE
    levels = [0, 127, None, 30]
    for i, level in enumerate(levels):
        producer.on_rtp(i, i * 960, False, b"opus%d" % i, level, 1.0)
    await until(lambda: len(sink.packets) == len(levels))
    assert [p.audio_level for p in sink.packets] == levels
    assert [p.payload for p in sink.packets] == [b"opus%d" % i for i in range(4)]
    assert relayed_producer.take_mean_audio_level() == pytest.approx(157 / 3)


async def test_payload_types_on_the_wire(endpoints: tuple[RelayEndpoint, RelayEndpoint]) -> None:
    home, _ = endpoints
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(2)
    try:
        link = home.link(listener.getsockname())
        video, audio = home_producer(), home_producer(OPUS, TrackSource.MICROPHONE)
        link.forward(video, 5)
        link.forward(audio, 6)
        video.on_rtp(70000 & 0xFFFF, 1, True, KEYFRAME, None, 1.0)
        audio.on_rtp(9, 2, False, b"a", 12, 1.0)
        first, second = listener.recv(2048), listener.recv(2048)
    finally:
        listener.close()
    assert first == build_header(VIDEO_PAYLOAD_TYPE, True, 70000 & 0xFFFF, 1, 5, b"") + KEYFRAME
    # One-byte block: id 1, length 1 (L=0), V=0 level, padded to a word.
    assert second == build_header(AUDIO_PAYLOAD_TYPE, False, 9, 2, 6, bytes((0x10, 12))) + b"a"
    assert second[12:20] == bytes((0xBE, 0xDE, 0, 1, 0x10, 12, 0, 0))


async def test_sender_reports_pass_through(
    endpoints: tuple[RelayEndpoint, RelayEndpoint],
) -> None:
    home, edge = endpoints
    producer = home_producer()
    producer.on_sender_report(0x1111_2222_3333_4444, 5000)  # known before the relay starts
    relayed_producer, sink, _ = relayed(home, edge, producer)
    await until(lambda: len(sink.reports) == 1)
    producer.on_sender_report(0x1111_2222_3333_5555, 95000)
    await until(lambda: len(sink.reports) == 2)
    assert sink.reports == [(0x1111_2222_3333_4444, 5000), (0x1111_2222_3333_5555, 95000)]
    assert relayed_producer.last_sender_report == (0x1111_2222_3333_5555, 95000)


async def test_edge_keyframe_requests_reach_the_home_coalesced(
    endpoints: tuple[RelayEndpoint, RelayEndpoint],
) -> None:
    home, edge = endpoints
    requests = Requests()
    producer = Producer("track-1", "alice", TrackSource.CAMERA, VP8, requests)
    # The edge does not coalesce here, so both PLIs reach the home, which does.
    relayed_producer, _, _ = relayed(home, edge, producer, keyframe_interval=0.0)
    link = home.link(edge.address)
    relayed_producer.request_keyframe(1.0)
    relayed_producer.request_keyframe(1.0)
    await until(lambda: link.keyframe_requests_received == 2)
    assert relayed_producer.keyframe_requests_sent == 2
    assert requests.count == 1 and producer.keyframe_requests_sent == 1


async def test_garbage_is_ignored_and_counted(
    endpoints: tuple[RelayEndpoint, RelayEndpoint],
) -> None:
    home, edge = endpoints
    producer = home_producer()
    _, sink, ssrc = relayed(home, edge, producer)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    try:
        garbage = [
            b"",
            b"\x00" * 40,  # version 0
            b"\x80\xc8\x00\x06" + b"\x00" * 8,  # a truncated SR
            b"\x81\xce\x00\x02\x00\x00",  # a truncated PLI
            b"\x80\xc8\x00\x01" + b"\x00" * 4,  # an SR of the wrong length
        ]
        for data in garbage:
            stranger.sendto(data, edge.address)
            stranger.sendto(data, home.address)
        # Well-formed, but from nobody the edge or the home expects.
        rtp = build_header(96, False, 1, 1, ssrc, b"") + KEYFRAME
        stranger.sendto(rtp, edge.address)
        stranger.sendto(sender_report(ssrc, 1, 1, 0, 0), edge.address)
        stranger.sendto(picture_loss_indication(ssrc), home.address)
        stranger.sendto(picture_loss_indication(ssrc), edge.address)
        await until(lambda: edge.datagrams_received == 8 and home.datagrams_received == 6)
    finally:
        stranger.close()
    assert edge.datagrams_malformed == 5 and edge.datagrams_unknown == 3
    assert home.datagrams_malformed == 5 and home.datagrams_unknown == 1
    # A stream the edge does not expect, from the home itself.
    unexpected = home_producer()
    home.link(edge.address).forward(unexpected, ssrc + 1)
    unexpected.on_rtp(1, 1, True, KEYFRAME, None, 1.0)
    producer.on_rtp(1, 1, True, KEYFRAME, None, 1.0)  # loopback keeps one socket's order
    await until(lambda: len(sink.packets) == 1)
    assert edge.datagrams_unknown == 4
    assert producer.keyframe_requests_sent == 0


async def test_stop_and_close_end_forwarding(
    endpoints: tuple[RelayEndpoint, RelayEndpoint],
) -> None:
    home, edge = endpoints
    first, second = home_producer(), home_producer()
    _, first_sink, first_ssrc = relayed(home, edge, first)
    _, second_sink, second_ssrc = relayed(home, edge, second)
    link = home.link(edge.address)
    first.on_rtp(1, 1, True, KEYFRAME, None, 1.0)
    second.on_rtp(1, 1, True, KEYFRAME, None, 1.0)
    await until(lambda: len(first_sink.packets) == 1 and len(second_sink.packets) == 1)

    link.stop(first_ssrc)
    assert first.sinks == [] and len(second.sinks) == 1
    first.on_rtp(2, 2, True, DELTA, None, 1.0)
    second.on_rtp(2, 2, True, DELTA, None, 1.0)  # loopback keeps one socket's order
    await until(lambda: len(second_sink.packets) == 2)
    assert len(first_sink.packets) == 1
    assert link.packets_sent == 3 and link.ssrcs == [second_ssrc]

    link.close()
    assert second.sinks == [] and link.ssrcs == []
    assert home.link(edge.address) is not link  # a new link to the same edge
    assert link.packets_sent == 3


async def test_a_producer_that_ends_leaves_the_link(
    endpoints: tuple[RelayEndpoint, RelayEndpoint],
) -> None:
    home, edge = endpoints
    producer = home_producer()
    relayed_producer, _, _ = relayed(home, edge, producer)
    link = home.link(edge.address)
    producer.close()
    assert link.ssrcs == [] and producer.sinks == []
    # A PLI for it now finds nothing to ask.
    relayed_producer.request_keyframe(1.0)
    await until(lambda: home.datagrams_unknown == 1)
    assert link.keyframe_requests_received == 0


async def test_stop_receiving_ends_feeding_and_keyframe_requests(
    endpoints: tuple[RelayEndpoint, RelayEndpoint],
) -> None:
    home, edge = endpoints
    producer = home_producer()
    relayed_producer, sink, ssrc = relayed(home, edge, producer)
    edge.stop_receiving(home.address, ssrc)
    producer.on_rtp(1, 1, True, KEYFRAME, None, 1.0)
    await until(lambda: edge.datagrams_unknown == 1)
    assert sink.packets == []
    relayed_producer.request_keyframe(1.0)  # goes nowhere now
    assert home.link(edge.address).keyframe_requests_received == 0


async def test_sequence_numbers_wrap(endpoints: tuple[RelayEndpoint, RelayEndpoint]) -> None:
    home, edge = endpoints
    producer = home_producer(OPUS, TrackSource.MICROPHONE)
    _, sink, _ = relayed(home, edge, producer)
    for sequence in (65533, 65534, 65535, 0, 1, 2):
        producer.on_rtp(sequence, sequence * 960, False, b"a", None, 1.0)
    await until(lambda: len(sink.packets) == 6)
    assert [p.ext_sequence for p in sink.packets] == [65533, 65534, 65535, 65536, 65537, 65538]


async def test_a_pause_is_bridged_and_video_restarts_on_a_keyframe(
    endpoints: tuple[RelayEndpoint, RelayEndpoint],
) -> None:
    home, edge = endpoints
    producer = home_producer()
    _, sink, _ = relayed(home, edge, producer)
    producer.on_rtp(100, 0, True, KEYFRAME, None, 1.0)
    producer.on_rtp(101, 3000, True, DELTA, None, 1.0)
    producer.paused = True
    producer.on_rtp(102, 6000, True, DELTA, None, 1.0)
    producer.paused = False
    # The publisher's numbering ran more than half the sequence space on meanwhile.
    producer.on_rtp(40000, 900000, True, DELTA, None, 2.0)  # dropped: waits for a keyframe
    producer.on_rtp(40001, 903000, True, KEYFRAME, None, 2.0)
    producer.on_rtp(40002, 906000, True, DELTA, None, 2.0)
    await until(lambda: len(sink.packets) == 4)
    assert [(p.ext_sequence, p.timestamp) for p in sink.packets] == [
        (100, 0),
        (101, 3000),
        (102, 903000),
        (103, 906000),
    ]
    assert sink.packets[2].keyframe
    assert producer.keyframe_requests_sent == 1


async def test_an_unsendable_packet_is_dropped_not_raised(
    endpoints: tuple[RelayEndpoint, RelayEndpoint],
) -> None:
    home, edge = endpoints
    producer = home_producer()
    _, sink, _ = relayed(home, edge, producer)
    producer.on_rtp(1, 1, True, KEYFRAME + b"\x00" * 70000, None, 1.0)  # over UDP's limit
    producer.on_rtp(2, 2, True, DELTA, None, 1.0)
    await until(lambda: len(sink.packets) == 1)
    link = home.link(edge.address)
    assert (link.packets_sent, link.packets_dropped) == (1, 1)


async def test_closing_an_endpoint_stops_everything(
    endpoints: tuple[RelayEndpoint, RelayEndpoint],
) -> None:
    home, edge = endpoints
    producer = home_producer()
    relayed(home, edge, producer)
    home.close()
    home.close()
    assert producer.sinks == []
    producer.on_rtp(1, 1, True, KEYFRAME, None, 1.0)
    with pytest.raises(RuntimeError):
        home.link(edge.address)
    with pytest.raises(RuntimeError):
        home.receive(edge.address, 1, home_producer())


async def test_buffers_are_enlarged(endpoints: tuple[RelayEndpoint, RelayEndpoint]) -> None:
    home, _ = endpoints
    default = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert home.receive_buffer_bytes > default.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert home.send_buffer_bytes > default.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    finally:
        default.close()


def test_relay_on_uvloop() -> None:
    async def round_trip() -> list[IncomingPacket]:
        home, edge = await RelayEndpoint.open(), await RelayEndpoint.open()
        try:
            producer = home_producer()
            _, sink, _ = relayed(home, edge, producer)
            producer.on_rtp(7, 8, True, KEYFRAME, None, 1.0)
            await until(lambda: len(sink.packets) == 1)
            return sink.packets
        finally:
            home.close()
            edge.close()

    loop = uvloop.new_event_loop()
    try:
        packets = loop.run_until_complete(round_trip())
    finally:
        loop.close()
    assert (packets[0].ext_sequence, packets[0].timestamp, packets[0].payload) == (7, 8, KEYFRAME)
