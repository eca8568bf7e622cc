"""A WHEP viewer's connection: the viewer offers, the server answers, the stage fills the sections.

The viewer offers receive-only audio and video sections. Its i-th video section carries the
stage's ``video[i]`` and its j-th audio section ``audio[j]``. Each section keeps one consumer (one
outgoing SSRC) for its whole life and switches it to whichever producer holds its slot, so when a
speaker is promoted or the slides start the viewer needs no renegotiation. Sections beyond the
stage stay open but silent until the stage grows.

A video section is answered with every video codec both sides have (VP8 and H.264), so it can
carry whichever codec the producer in its slot was published with: the consumer switches the
payload type when the slot changes hands, and the player's decoder follows it. Only a producer
whose codec the player did not offer at all (an H.264-only player and a VP8-only publisher) leaves
its section silent; that is logged and counted (``mcu_whep_codec_mismatches_total``) until the
slot changes.

Who does what: the connection attaches each section to a producer (``add_sink``/``remove_sink``)
and tells the section's consumer to :meth:`~mcu.sfu.consumer.Consumer.follow` it; the consumer keeps
the outgoing stream continuous and asks for keyframes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiortc import RTCRtpTransceiver, RTCSessionDescription, sdp
from aiortc.rtcdtlstransport import RTCDtlsTransport
from prometheus_client import Counter

from mcu.media import CodecInfo, IncomingPacket
from mcu.sfu import aiortc_adapter as adapter
from mcu.sfu.consumer import Consumer, PayloadTypes
from mcu.sfu.peer import IceServerConfig, NegotiationError, check_section_count, new_peer_connection
from mcu.sfu.producer import Producer
from mcu.sfu.stage import Stage

logger = logging.getLogger(__name__)

AUDIO_CODEC = "audio/opus"
VIDEO_CODECS = ("video/vp8", "video/h264")
MAX_MID_BYTES = 16
"Longest mid an RTP one-byte header extension element can carry."
STREAM_ID = "stage"
"The msid stream of every section: simple players show ``streams[0]`` of the first track."
MAX_VIEWER_SECTIONS = 16
"""Media sections a viewer's offer may have. Each becomes a transceiver and, while the stage
fills it, a consumer; a lecture's stage is content plus a few lecturers and speakers (the web
client offers three of each kind)."""

CODEC_MISMATCHES = Counter(
    "mcu_whep_codec_mismatches_total",
    "Times a WHEP section could not carry its stage slot: the player did not offer its codec.",
)


def codec_compatible(section: CodecInfo, producer: CodecInfo) -> bool:
    """Whether a section negotiated with ``section`` can carry a producer of ``producer``.

    The MIME type and clock rate must match and, for H.264, the packetization mode (mode 0 sends
    one NAL unit per packet, mode 1 also aggregates and fragments; a mode-0 receiver cannot take
    mode-1 packets). Profile and level differences are left to the decoder, as browsers do.
    """
    if section.mime_type.lower() != producer.mime_type.lower():
        return False
    if section.clock_rate != producer.clock_rate:
        return False
    if section.mime_type.lower() == "video/h264":
        return _packetization_mode(section) == _packetization_mode(producer)
    return True


def _packetization_mode(codec: CodecInfo) -> str:
    return dict(codec.parameters).get("packetization-mode", "0")


def check_viewer_offer(offer_sdp: str) -> None:
    """Refuse what cannot be a viewer's offer before aiortc applies it.

    Raises :class:`~mcu.sfu.peer.NegotiationError` on more than ``MAX_VIEWER_SECTIONS`` media
    sections, malformed SDP, an answer sent instead of an offer, missing ICE credentials or DTLS
    fingerprint, a mid longer than 16 bytes, or no section the viewer receives with a codec we
    send (Opus, VP8 or H.264).
    """
    check_section_count(offer_sdp, MAX_VIEWER_SECTIONS)
    try:
        description = sdp.SessionDescription.parse(offer_sdp)
    except Exception as exc:
        raise NegotiationError(f"malformed SDP: {exc!r}") from None
    media = [m for m in description.media if m.kind in ("audio", "video")]
    if not media:
        raise NegotiationError("the offer has no audio or video section")
    for m in media:
        if m.dtls is None or not m.dtls.fingerprints:
            raise NegotiationError("the offer has no DTLS fingerprint or setup attribute")
        if m.dtls.role != "auto":
            # An offerer must say a=setup:actpass; active or passive is an answer's choice.
            raise NegotiationError("this SDP is an answer, not an offer (a=setup is not actpass)")
        if m.ice is None or not m.ice.usernameFragment or not m.ice.password:
            raise NegotiationError("the offer has no ICE credentials (ice-ufrag, ice-pwd)")
        if m.rtp.muxId and len(m.rtp.muxId.encode()) > MAX_MID_BYTES:
            # Each packet carries the mid in a one-byte header extension element (RFC 8285).
            raise NegotiationError(f"a mid is longer than {MAX_MID_BYTES} bytes")
    if not any(_receivable(m) for m in media):
        raise NegotiationError(
            "the offer has no audio or video section the viewer receives with a codec we send "
            "(recvonly or sendrecv, with Opus, VP8 or H.264)"
        )


def _receivable(media: sdp.MediaDescription) -> bool:
    if media.direction not in ("recvonly", "sendrecv"):
        return False
    wanted = (AUDIO_CODEC,) if media.kind == "audio" else VIDEO_CODECS
    return any(c.mimeType.lower() in wanted for c in media.rtp.codecs)


class _Section:
    """One sending media section: its consumer, and the stage slot it follows.

    This is what a producer holds among its sinks rather than the consumer itself: a producer that
    ends closes its sinks, and a section must outlive the producers it follows. Packets, sender
    reports and resyncs go straight to the consumer's bound methods (no extra call per packet).
    """

    def __init__(
        self,
        kind: str,
        index: int,
        codecs: list[tuple[CodecInfo, PayloadTypes]],
        transceiver: RTCRtpTransceiver,
        consumer: Consumer,
    ) -> None:
        self.kind = kind
        self.index = index
        self.codecs = codecs
        "The codecs this section negotiated, with their payload types, in answer order."
        self.transceiver = transceiver
        self.dtls: RTCDtlsTransport = adapter.dtls_transport(transceiver)
        self.consumer = consumer
        self.producer: Producer | None = None
        "The producer this section is a sink of."
        self.refused: Producer | None = None
        "The last producer left out for its codec (logged once)."
        self.on_packet: Callable[[IncomingPacket], None] = consumer.on_packet
        self.on_sender_report: Callable[[int, int], None] = consumer.on_sender_report
        self.resync: Callable[[], None] = consumer.resync

    def payload_for(self, codec: CodecInfo) -> PayloadTypes | None:
        """The payload types to send a producer of ``codec`` with, None if none fits."""
        fitting = [(c, p) for c, p in self.codecs if codec_compatible(c, codec)]
        # The same profile if the player offered it; otherwise the decoder copes (as browsers do).
        exact = next((p for c, p in fitting if c.parameters == codec.parameters), None)
        return exact if exact is not None else (fitting[0][1] if fitting else None)

    def close(self) -> None:
        """The followed producer ended: forward nothing until the stage moves on."""
        self.producer = None
        self.consumer.follow(None)


class ViewerConnection:
    """The server side of one WHEP playback session, following a :class:`~mcu.sfu.stage.Stage`."""

    def __init__(
        self,
        ice_servers: list[IceServerConfig],
        stage: Stage,
        on_consumer: Callable[[int], None],
        *,
        prefer_video: str | None = "video/H264",
    ) -> None:
        self.pc = new_peer_connection(ice_servers)
        self.stage = stage
        self.on_closed: Callable[[], None] | None = None
        "Called once when the connection fails or closes (the WHEP session then ends)."
        self._on_consumer = on_consumer
        self._prefer_video = prefer_video
        self._sections: list[_Section] = []
        self._unlisten: Callable[[], None] | None = None
        self._answered = False
        self._closed = False

        @self.pc.on("connectionstatechange")  # type: ignore[untyped-decorator]
        async def on_connection_state() -> None:
            if self.pc.connectionState in ("failed", "closed"):
                await self.close()

    async def answer(self, offer_sdp: str) -> str:
        """Apply the viewer's offer and return the answer SDP.

        Raises :class:`~mcu.sfu.peer.NegotiationError` (with a reason fit for the viewer) when the
        offer cannot be used; the connection is then closed.
        """
        if self._answered or self._closed:
            raise NegotiationError("this session has already answered an offer")
        self._answered = True
        try:
            return await self._answer(offer_sdp)
        except Exception:
            await self.close()
            raise

    async def _answer(self, offer_sdp: str) -> str:
        check_viewer_offer(offer_sdp)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:
            raise NegotiationError(f"offer rejected: {exc}") from exc
        plans: list[tuple[str, int, list[tuple[CodecInfo, PayloadTypes]], RTCRtpTransceiver]] = []
        counts = {"audio": 0, "video": 0}
        for transceiver in self.pc.getTransceivers():
            kind = transceiver.kind
            index = counts[kind]
            counts[kind] += 1
            codecs = (
                self._choose_codecs(transceiver) if adapter.remote_receives(transceiver) else []
            )
            if not codecs:
                transceiver.direction = "inactive"
                continue
            track_id = f"{kind}-{index}"
            transceiver.sender.replaceTrack(adapter.IdleTrack(kind, track_id))
            transceiver.direction = "sendonly"
            adapter.set_stream_ids(transceiver, STREAM_ID, track_id)
            plans.append((kind, index, codecs, transceiver))
        if not plans:
            raise NegotiationError("the offer has no section we can send to")
        try:
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except Exception as exc:
            raise NegotiationError(f"cannot answer the offer: {exc}") from exc
        for kind, index, codecs, transceiver in plans:
            transmitter = adapter.SrtpTransmitter(adapter.dtls_transport(transceiver))
            consumer = Consumer(
                adapter.consumer_leg(transceiver),
                transmitter,
                video=kind == "video",
                sender_report_sink=adapter.sender_report_sink(transceiver.sender, transmitter),
            )
            adapter.bind_feedback(transceiver.sender, consumer)
            self._sections.append(_Section(kind, index, codecs, transceiver, consumer))
            self._on_consumer(+1)
        self._watch_transports()
        self._unlisten = self.stage.listen(self._on_stage)
        return str(self.pc.localDescription.sdp)

    def _choose_codecs(
        self, transceiver: RTCRtpTransceiver
    ) -> list[tuple[CodecInfo, PayloadTypes]]:
        """Opus for audio; for video every common codec we forward, the preferred one first.

        Keeping them all lets a section carry any publisher of the stage, whatever codec its
        room negotiated with it (a meeting answers each publisher's first choice).
        """
        if transceiver.kind == "audio":
            return adapter.keep_codecs(transceiver, (AUDIO_CODEC,))
        return adapter.keep_codecs(transceiver, VIDEO_CODECS, self._prefer_video)

    def _watch_transports(self) -> None:
        # Sections start forwarding once their DTLS transport connects (usually one, bundled).
        watched: set[int] = set()
        for section in self._sections:
            dtls = section.dtls
            if id(dtls) in watched:
                continue
            watched.add(id(dtls))

            @dtls.on("statechange")  # type: ignore[untyped-decorator]
            def on_dtls_state() -> None:
                if not self._closed:
                    self._follow_stage(time.monotonic())

    def _on_stage(self) -> None:
        self._follow_stage(time.monotonic())

    def _follow_stage(self, now: float) -> None:
        for section in self._sections:
            self._follow(section, now)

    def _follow(self, section: _Section, now: float) -> None:
        slots = self.stage.video if section.kind == "video" else self.stage.audio
        wanted = slots[section.index] if section.index < len(slots) else None
        payload = section.payload_for(wanted.codec) if wanted is not None else None
        if wanted is not None and payload is None:
            if section.refused is not wanted:
                section.refused = wanted
                CODEC_MISMATCHES.inc()
                logger.warning(
                    "room %s: the player did not offer %s, the codec of track %s in %s slot %d; "
                    "its section (%s) stays silent until the slot changes",
                    self.stage.room_id,
                    wanted.codec.mime_type,
                    wanted.track_id,
                    section.kind,
                    section.index,
                    ", ".join(c.mime_type for c, _ in section.codecs),
                )
            wanted = None
        if section.dtls.state != "connected":
            wanted = None
        if wanted is section.producer:
            return
        if section.producer is not None:
            section.producer.remove_sink(section)
        section.producer = wanted
        section.consumer.follow(wanted, now, payload)
        if wanted is not None:
            wanted.add_sink(section)

    def consumers(self) -> list[Consumer]:
        """The consumers of this connection, one per sending section."""
        return [s.consumer for s in self._sections]

    async def close(self) -> None:
        """Stop following the stage, stop forwarding and close the connection."""
        if self._closed:
            return
        self._closed = True
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        sections, self._sections = self._sections, []
        for section in sections:
            if section.producer is not None:
                section.producer.remove_sink(section)
                section.producer = None
            section.consumer.close()
            self._on_consumer(-1)
        try:
            await self.pc.close()
        except Exception:  # closing after a failure may raise from aiortc's transports
            logger.debug("closing a viewer connection failed", exc_info=True)
        if self.on_closed is not None:
            try:
                self.on_closed()
            except Exception:
                logger.exception("a viewer connection's close callback failed")
