"""The only module that touches aiortc's private internals (aiortc is pinned in pyproject.toml).

aiortc's receiver always depacketises and decodes, and its sender always encodes or repacketises.
A forwarding server needs neither, so this adapter enters at four points, each guarded by
``tests/unit/test_aiortc_adapter.py`` so that an upgrade which moves them fails loudly:

- ingress: ``RTCDtlsTransport._handle_rtp_data`` receives each decrypted RTP packet; we parse it
  once, hand it to its producer with how late the server is getting to it (the receive stamp of
  the nominated ICE pair's socket, :mod:`mcu.sfu.lateness`), then let the receiver keep doing
  receiver reports and REMB (its arrival times taken from the kernel's receive stamps, see
  :data:`NTP_UNIX_OFFSET`). The receiver's jitter buffer is replaced by one that never
  completes a frame, so its decoder thread idles, and its NACK generator by ours
  (``mcu/sfu/nack.py``), which asks again for a packet whose request or retransmission was lost
  and asks for nothing while the producer sheds load; NACKs go out through
  ``_send_rtcp_nack``.
- egress: ``RTCDtlsTransport._tx_srtp.protect`` and the nominated ICE pair's datagram transport.
- feedback: a subscriber's ``RTCRtpSender._handle_rtcp_packet`` gets NACK, PLI/FIR and REMB; the
  sender's RTCP loop takes our translated sender-report clock mapping.
- codec and extension choices: ``RTCRtpTransceiver._codecs`` / ``_headerExtensions``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiortc.rtcrtpreceiver
from aiortc import MediaStreamTrack, RTCRtpTransceiver
from aiortc.codecs import CODECS, is_rtx
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import (
    SRTP_AEAD_AES_128_GCM,
    SRTP_AEAD_AES_256_GCM,
    SRTP_PROFILES,
    RTCDtlsTransport,
)
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    unpack_remb_fci,
)

from mcu.codecs.red import red_primary
from mcu.infra import metrics
from mcu.media import CodecInfo
from mcu.sfu import aiortc_reports
from mcu.sfu.aiortc_send import SrtpTransmitter as SrtpTransmitter  # the send half
from mcu.sfu.consumer import Consumer, ConsumerLeg, PayloadTypes
from mcu.sfu.lateness import INGRESS, LatenessProbe, last_arrival
from mcu.sfu.nack import NackRequester
from mcu.sfu.producer import Producer

logger = logging.getLogger(__name__)

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
RED_MIME_TYPE = "audio/red"

_GCM_PROFILES = (SRTP_AEAD_AES_256_GCM, SRTP_AEAD_AES_128_GCM)
_installed = False
_background: set[asyncio.Future[None]] = set()


def _spawn(coroutine: Any) -> None:
    """Run a fire-and-forget RTCP send, keeping a reference until it is done."""
    future = asyncio.ensure_future(coroutine)
    _background.add(future)
    future.add_done_callback(_background.discard)


# -- process-wide settings -------------------------------------------------------------------


def install() -> None:
    """Count every frame any aiortc receiver decodes in this process (forwarding decodes none)."""
    global _installed
    if _installed:
        return
    _installed = True
    original = aiortc.rtcrtpreceiver.get_decoder  # type: ignore[attr-defined]

    def counting_get_decoder(codec: RTCRtpCodecParameters) -> Any:
        return _CountingDecoder(original(codec))

    aiortc.rtcrtpreceiver.get_decoder = counting_get_decoder  # type: ignore[attr-defined]


class _CountingDecoder:
    def __init__(self, decoder: Any) -> None:
        self._decoder = decoder

    def decode(self, encoded_frame: Any) -> Any:
        metrics.DECODED_FRAMES.inc()
        return self._decoder.decode(encoded_frame)


def require_gcm_srtp() -> None:
    """Accept only AES-GCM SRTP profiles on every DTLS transport created from now on."""
    SRTP_PROFILES[:] = [p for p in SRTP_PROFILES if p in _GCM_PROFILES]
    if not SRTP_PROFILES:
        raise RuntimeError("libsrtp was built without AES-GCM support")


@dataclass
class OpusSettings:
    """How this process negotiates Opus (:func:`configure_opus`)."""

    red: bool = False
    "Accept RED from publishers and offer it to subscribers (RFC 2198); set with FEC."


OPUS = OpusSettings()


def configure_opus(fec: bool, dtx: bool) -> None:
    """The Opus fmtp of every answer and offer: ``useinbandfec=1`` (Chromium then adds FEC as
    its receiver reports loss), ``usedtx=1`` (it stops sending during silence); RED goes with
    FEC. aiortc answers with its codec table's parameters, and producers' codec descriptions
    come from it too."""
    opus = next(c for c in CODECS["audio"] if c.mimeType.lower() == "audio/opus")
    wanted = {"useinbandfec": fec, "usedtx": dtx}
    opus.parameters = {name: "1" for name, on in wanted.items() if on}
    OPUS.red = fec


def srtp_profile_names() -> list[str]:
    """The SRTP profiles offered in DTLS, most preferred first."""
    return [p.openssl_profile.decode() for p in SRTP_PROFILES]


# -- ingress ---------------------------------------------------------------------------------


def parse_rtp(data: bytes, extensions_map: HeaderExtensionsMap) -> RtpPacket | None:
    """A decrypted RTP packet parsed as aiortc parses it, or None if it is malformed.

    aiortc reads header-extension values with struct, so a value of the wrong size (an audio
    level or abs-send-time one byte too long) raises struct.error rather than ValueError; from
    here it would end the publisher's DTLS transport, whose receive loop stops on any exception.
    """
    try:
        return RtpPacket.parse(data, extensions_map)
    except (ValueError, struct.error):
        return None


class _NoFrames:
    """A jitter buffer that never completes a frame, so aiortc's decoder never runs."""

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        return False, None


class _Ingress:
    """Routes one receiver's packets (RTX unwrapped) to its producer, and notes what is missing
    (video; audio is never asked for again)."""

    __slots__ = (
        "nacks",
        "payload_type",
        "producer",
        "red_payload_type",
        "rtx_payload_type",
        "ssrc",
    )

    def __init__(
        self,
        producer: Producer,
        payload_type: int,
        rtx_payload_type: int | None,
        nacks: NackRequester | None,
        red_payload_type: int | None = None,
    ):
        self.producer = producer
        self.payload_type = payload_type
        self.rtx_payload_type = rtx_payload_type
        self.nacks = nacks
        self.red_payload_type = red_payload_type
        self.ssrc: int | None = None

    def on_packet(self, packet: RtpPacket, now: float, lateness: float) -> None:
        level = packet.extensions.audio_level
        audio_level = level[1] if level is not None else None
        pt = packet.payload_type
        if pt == self.payload_type:
            self.ssrc = packet.ssrc
            if self.nacks is not None:
                self.nacks.on_packet(packet.sequence_number, now)
            self.producer.on_rtp(
                packet.sequence_number,
                packet.timestamp,
                bool(packet.marker),
                packet.payload,
                audio_level,
                now,
                lateness,
            )
        elif pt == self.red_payload_type:
            self.ssrc = packet.ssrc
            self._on_red(packet, audio_level, now, lateness)
        elif pt == self.rtx_payload_type:
            payload = packet.payload
            if len(payload) <= 2:
                return  # bandwidth probe: padding only
            metrics.RTX_RECEIVED.inc()
            sequence = (payload[0] << 8) | payload[1]
            if self.nacks is not None:
                self.nacks.on_packet(sequence, now)
            self.producer.on_rtp(
                sequence,
                packet.timestamp,
                bool(packet.marker),
                payload[2:],
                audio_level,
                now,
                lateness,
            )
        else:
            metrics.PACKETS_DISCARDED.labels("unknown_payload_type").inc()

    def _on_red(self, packet: RtpPacket, level: int | None, now: float, lateness: float) -> None:
        # Parsed once: the primary block is the plain Opus for every sink that did not negotiate
        # RED (recorder, mixer, relays, aiortc clients); the whole payload rides along.
        primary = red_primary(packet.payload)
        if primary is None or primary[0] != self.payload_type or not primary[1]:
            metrics.PACKETS_DISCARDED.labels("malformed_red").inc()
            return
        metrics.RED_RECEIVED.inc()
        marker, sequence, payload = bool(packet.marker), packet.sequence_number, packet.payload
        self.producer.on_rtp(
            sequence, packet.timestamp, marker, primary[1], level, now, lateness, red=payload
        )


NTP_UNIX_OFFSET = 2_208_988_800
"""Seconds from 1900 (aiortc's clock for arrival times) to 1970 (the kernel's receive stamps).

aiortc's REMB to a publisher comes from a delay-based estimator (Google congestion control's
receive side) fed with each packet's arrival time, which aiortc takes when the server gets to
the packet. On a busy server that is the event loop's delay, not the network's: measured with
five Chromium publishers on loopback on a loaded two-core machine, the estimator saw a growing
queue ("overusing") every few seconds where there was none, and the REMB it sent held the
cameras at 30-400 kbit/s instead of ~1.5 Mbit/s. Video packets get the kernel's receive stamp
of the last datagram read from the socket instead (one ioctl per video packet): the time the
network delivered it, whatever the server's load."""


class PublisherTap:
    """Taps a publisher connection's DTLS transport: decrypted RTP goes to producers first."""

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls = dtls
        self._ingress: dict[RTCRtpReceiver, _Ingress] = {}
        self._probe = LatenessProbe()
        self._fd = -1
        dtls._handle_rtp_data = self._handle_rtp_data  # type: ignore[method-assign]

    def _lateness(self, now: float) -> float:
        """How late this connection's packets are being processed (sampled, not per packet)."""
        if now < self._probe.estimate.next_due:
            return self._probe.estimate.current
        fds = []
        for protocol in self._dtls.transport._connection._protocols:
            sock = protocol.transport.get_extra_info("socket") if protocol.transport else None
            if sock is not None:
                fds.append(sock.fileno())
        if (fd := self._probe.sample_freshest(fds, now)) >= 0:
            self._fd = fd  # the socket the media come on, for the receive stamps
        return self._probe.estimate.current

    def close(self) -> None:
        """The connection ended: its lateness no longer counts."""
        INGRESS.discard(self._probe.estimate)

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        packet = parse_rtp(data, self._dtls._rtp_header_extensions_map)
        if packet is None:
            metrics.PACKETS_DISCARDED.labels("malformed").inc()
            return
        receiver = self._dtls._rtp_router.route_rtp(packet)
        if receiver is None:
            metrics.PACKETS_DISCARDED.labels("unroutable").inc()
            return
        ingress = self._ingress.get(receiver)  # type: ignore[call-overload]
        if ingress is not None:
            now = time.monotonic()
            ingress.on_packet(packet, now, self._lateness(now))
            if ingress.nacks is not None and self._fd >= 0:  # video: REMB is estimated
                if (arrival := last_arrival(self._fd)) is not None:
                    arrival_time_ms = int((arrival + NTP_UNIX_OFFSET) * 1000)
            if ingress.nacks is not None and ingress.ssrc is not None:
                # aiortc's generator would ask only when a new gap appears (mcu/sfu/nack.py); it is
                # created when the receiver starts, after bind(), so it is switched off here.
                receiver._RTCRtpReceiver__nack_generator = None  # type: ignore[attr-defined]
                if ingress.producer.shedding:
                    # What is missing was mostly shed on purpose or lost at a full receive
                    # buffer; retransmissions would only add to the backlog being drained.
                    if withheld := ingress.nacks.forget():
                        metrics.NACKS_WITHHELD.inc(withheld)
                elif lost := ingress.nacks.due(now):
                    await receiver._send_rtcp_nack(ingress.ssrc, lost)  # type: ignore[attr-defined]
        # Receiver reports and REMB stay aiortc's; its decoder gets no frames.
        await receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)

    def bind(self, transceiver: RTCRtpTransceiver, producer: Producer) -> None:
        """Forward the packets ``transceiver`` receives to ``producer``."""
        receiver = transceiver.receiver
        receiver._RTCRtpReceiver__jitter_buffer = _NoFrames()  # type: ignore[attr-defined]
        primary, rtx = negotiated_codecs(transceiver)
        # Video only, as aiortc's own generator (audio has no retransmission in WebRTC).
        nacks = NackRequester() if producer.kind == "video" else None
        red = red_codec(transceiver)
        ingress = _Ingress(
            producer,
            payload_type(primary),
            payload_type(rtx) if rtx else None,
            nacks,
            payload_type(red) if red else None,
        )
        self._ingress[receiver] = ingress

        def send_pli() -> None:
            if ingress.ssrc is not None:
                metrics.KEYFRAME_REQUESTS.inc()
                _spawn(receiver._send_rtcp_pli(ingress.ssrc))

        producer.send_keyframe_request = send_pli
        original = receiver._handle_rtcp_packet

        async def handle_rtcp(packet: Any) -> None:
            if isinstance(packet, RtcpSrPacket) and packet.ssrc == ingress.ssrc:
                info = packet.sender_info
                producer.on_sender_report(info.ntp_timestamp, info.rtp_timestamp)
            await original(packet)

        receiver._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]

    def unbind(self, transceiver: RTCRtpTransceiver) -> None:
        """Stop forwarding this transceiver's packets."""
        self._ingress.pop(transceiver.receiver, None)  # type: ignore[call-overload]


def negotiated_codecs(
    transceiver: RTCRtpTransceiver,
) -> tuple[RTCRtpCodecParameters, RTCRtpCodecParameters | None]:
    """The transceiver's primary codec and its RTX codec, if negotiated."""
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    primary = next(c for c in codecs if not is_rtx(c) and c.mimeType.lower() != RED_MIME_TYPE)
    rtx = next(
        (c for c in codecs if is_rtx(c) and c.parameters.get("apt") == primary.payloadType),
        None,
    )
    return primary, rtx


def red_codec(transceiver: RTCRtpTransceiver) -> RTCRtpCodecParameters | None:
    """The RED codec (RFC 2198) negotiated on this section, if any (see :func:`accept_red`)."""
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    return next((c for c in codecs if c.mimeType.lower() == RED_MIME_TYPE), None)


def accept_red(transceiver: RTCRtpTransceiver, red_payload_type: int) -> None:
    """Answer a publisher's offered RED for the section's Opus (aiortc would leave it out).
    Put first, it makes Chromium send RED; called after :func:`narrow_to_first_codec`."""
    primary, _ = negotiated_codecs(transceiver)
    opus = payload_type(primary)
    red = RTCRtpCodecParameters(
        mimeType=RED_MIME_TYPE,
        clockRate=primary.clockRate,
        channels=primary.channels,
        payloadType=red_payload_type,
        parameters={f"{opus}/{opus}": None},
    )
    transceiver._codecs = [red] + [
        c for c in transceiver._codecs if c is not red_codec(transceiver)
    ]


def payload_type(codec: RTCRtpCodecParameters) -> int:
    """A negotiated codec's payload type (always set once negotiated)."""
    if codec.payloadType is None:
        raise ValueError(f"{codec.mimeType} has no payload type")
    return codec.payloadType


def remote_sends(transceiver: RTCRtpTransceiver) -> bool:
    """Whether the remote offer sends media on this transceiver's section."""
    return transceiver._offerDirection in ("recvonly", "sendrecv")


def remote_receives(transceiver: RTCRtpTransceiver) -> bool:
    """Whether the remote offer receives media on this transceiver's section (we may send)."""
    return transceiver._offerDirection in ("sendonly", "sendrecv")


def narrow_to_first_codec(transceiver: RTCRtpTransceiver, prefer: str | None = None) -> CodecInfo:
    """Answer a publisher with only one common codec (and its RTX), and describe it.

    The first common codec, or the first of MIME type ``prefer`` when the offer has it (recorded
    rooms prefer H.264, which MP4 holds as a copy). Called between setRemoteDescription(offer)
    and createAnswer, so the publisher cannot switch codecs under the subscribers.
    """
    primary, rtx = negotiated_codecs(transceiver)
    if prefer is not None:
        codecs: list[RTCRtpCodecParameters] = transceiver._codecs
        preferred = next(
            (c for c in codecs if not is_rtx(c) and c.mimeType.lower() == prefer.lower()), None
        )
        if preferred is not None:
            primary = preferred
            rtx = next(
                (c for c in codecs if is_rtx(c) and c.parameters.get("apt") == primary.payloadType),
                None,
            )
    transceiver._codecs = [primary] + ([rtx] if rtx else [])
    return codec_info(primary)


def keep_codecs(
    transceiver: RTCRtpTransceiver, mime_types: tuple[str, ...], prefer: str | None = None
) -> list[tuple[CodecInfo, PayloadTypes]]:
    """Answer with every common codec of ``mime_types`` (each with its RTX), ``prefer`` first.

    Called between setRemoteDescription(offer) and createAnswer. Returns what each kept codec
    is described as and the payload types it has on this section, in answer order.
    """
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    wanted = {m.lower() for m in mime_types}
    primaries = [c for c in codecs if not is_rtx(c) and c.mimeType.lower() in wanted]
    if prefer is not None:
        primaries.sort(key=lambda c: c.mimeType.lower() != prefer.lower())  # stable
    kept: list[RTCRtpCodecParameters] = []
    described: list[tuple[CodecInfo, PayloadTypes]] = []
    for primary in primaries:
        rtx = next(
            (c for c in codecs if is_rtx(c) and c.parameters.get("apt") == primary.payloadType),
            None,
        )
        kept += [primary] + ([rtx] if rtx else [])
        described.append(
            (
                codec_info(primary),
                PayloadTypes(payload_type(primary), payload_type(rtx) if rtx else None),
            )
        )
    transceiver._codecs = kept
    return described


def codec_info(codec: RTCRtpCodecParameters) -> CodecInfo:
    """Our description of an aiortc codec."""
    return CodecInfo(
        mime_type=codec.mimeType,
        clock_rate=codec.clockRate,
        channels=codec.channels,
        parameters=tuple(sorted((str(k), str(v)) for k, v in codec.parameters.items())),
    )


# -- egress ----------------------------------------------------------------------------------


class IdleTrack(MediaStreamTrack):
    """A sender's track that never yields, so aiortc's own RTP loop for that sender idles."""

    def __init__(self, kind: str, track_id: str) -> None:
        super().__init__()
        self.kind = kind
        self._id = track_id
        self._never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def recv(self) -> Any:
        await self._never
        raise MediaStreamError

    def stop(self) -> None:
        if not self._never.done():
            self._never.set_result(None)
        super().stop()


def offer_codec(transceiver: RTCRtpTransceiver, codec: CodecInfo) -> None:
    """Offer a subscriber exactly the producer's codec (plus RTX for video)."""
    capabilities = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    params = dict(codec.parameters)
    wanted = [
        c
        for c in capabilities
        if c.mimeType.lower() == codec.mime_type.lower()
        and c.clockRate == codec.clock_rate
        # Opus's fmtp says what its receiver prefers (FEC, DTX), not what the stream is.
        and (codec.kind == "audio" or {str(k): str(v) for k, v in c.parameters.items()} == params)
    ]
    if not wanted:
        raise ValueError(f"codec {codec.mime_type} {params} cannot be offered")
    if transceiver.kind == "video":
        wanted.append(RTCRtpCodecCapability(mimeType="video/rtx", clockRate=90000))
    transceiver.setCodecPreferences(wanted)


def consumer_leg(transceiver: RTCRtpTransceiver) -> ConsumerLeg:
    """What the subscriber negotiated for this transceiver (after the answer is applied)."""
    primary, rtx = negotiated_codecs(transceiver)
    ids = {e.uri: e.id for e in transceiver._headerExtensions}
    sender = transceiver.sender
    return ConsumerLeg(
        payload_type=payload_type(primary),
        ssrc=sender._ssrc,
        mid=transceiver.mid or "",
        rtx_payload_type=payload_type(rtx) if rtx else None,
        rtx_ssrc=sender._rtx_ssrc,
        mid_id=ids.get(MID_URI, 0),
        abs_send_time_id=ids.get(ABS_SEND_TIME_URI, 0),
        audio_level_id=ids.get(AUDIO_LEVEL_URI, 0),
    )


def sender_report_sink(
    sender: RTCRtpSender, transmitter: SrtpTransmitter
) -> Callable[[int, int, int, int], None]:
    """Where a subscriber leg's translated clock mapping goes: its connection's sender reports,
    sent on the shared timer through ``transmitter`` (:mod:`mcu.sfu.aiortc_reports`)."""
    return aiortc_reports.shared_sender_reports(sender, transmitter)


def bind_feedback(sender: RTCRtpSender, consumer: Consumer) -> None:
    """Route the subscriber's NACK, PLI/FIR and REMB for this sender to ``consumer``."""

    async def handle_rtcp(packet: Any) -> None:
        # Everything else (receiver reports past their loss, SDES, BYE) aiortc's sender would
        # only turn into getStats entries, which the server never reads.
        apply_feedback(packet, consumer, time.monotonic())

    sender._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]


def apply_feedback(packet: Any, consumer: Consumer, now: float) -> bool:
    """Apply one parsed RTCP packet from a subscriber to ``consumer``.

    NACK, PLI/FIR and REMB are ours (True); anything else, receiver reports included, is left to
    aiortc's sender (False), after a receiver report's loss is counted.
    """
    if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
        metrics.NACKS_RECEIVED.inc()
        metrics.RETRANSMISSIONS.inc(consumer.on_nack(packet.lost, now))
    elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
        metrics.PLIS_RECEIVED.inc()
        consumer.on_keyframe_request(now)
    elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
        try:
            bitrate, _ = unpack_remb_fci(packet.fci)
        except (ValueError, struct.error):  # aiortc reads a short SSRC list with struct
            return True
        consumer.on_remb(bitrate, now)
    else:
        if isinstance(packet, RtcpRrPacket):
            for report in packet.reports:
                metrics.observe_receiver_report(report.fraction_lost)
                if report.ssrc == consumer.leg.ssrc:  # the same RR reaches each leg it covers
                    consumer.on_receiver_report(report.fraction_lost)
        return False
    return True


def set_stream_ids(transceiver: RTCRtpTransceiver, stream_id: str, track_id: str) -> None:
    """The msid the subscriber sees: one stream per publisher, so browsers lip-sync its tracks."""
    transceiver.sender._stream_id = stream_id
    transceiver.sender._track_id = track_id


def dtls_transport(transceiver: RTCRtpTransceiver) -> RTCDtlsTransport:
    """The (bundled) DTLS transport a transceiver sends and receives on."""
    transport: RTCDtlsTransport = transceiver.sender.transport
    return transport
