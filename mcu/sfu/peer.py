"""A participant's two peer connections: publish (client offers) and subscribe (server offers)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
    sdp,
)
from aiortc.exceptions import InvalidStateError
from aiortc.rtcconfiguration import RTCBundlePolicy

from mcu.media import CodecInfo, TrackSource
from mcu.sfu import aiortc_adapter as adapter
from mcu.sfu import redsdp
from mcu.sfu.consumer import Consumer, RedConsumer
from mcu.sfu.downlink import Downlink, LinkState
from mcu.sfu.ladder import NO_MIX, MixOffer
from mcu.sfu.producer import Producer

logger = logging.getLogger(__name__)


MAX_PUBLISH_SECTIONS = 16
"""Media sections a publish (or WHIP) offer may have. A participant sends at most a microphone,
a camera and content; the rest is slack for sections a browser leaves inactive after
renegotiation. aiortc makes a transceiver per section, so the count is checked first."""


class NegotiationError(Exception):
    """The remote SDP could not be applied (malformed, or nothing we can use)."""


def media_section_count(description: str) -> int:
    """How many media sections (``m=`` lines) an SDP text has, counted as aiortc's parser splits
    lines, without parsing anything else."""
    return sum(1 for line in description.splitlines() if line.startswith("m="))


def check_section_count(description: str, limit: int, what: str = "offer") -> None:
    """Refuse SDP with more than ``limit`` media sections before anything parses it."""
    count = media_section_count(description)
    if count > limit:
        raise NegotiationError(
            f"the {what} has {count} media sections; at most {limit} are accepted"
        )


@dataclass(frozen=True)
class IceServerConfig:
    """A STUN/TURN server handed to aiortc and to clients."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)
    "A password: kept out of ``repr``, so a logged config or error never shows it."


def new_peer_connection(ice_servers: list[IceServerConfig]) -> RTCPeerConnection:
    """A peer connection with the server's ICE servers (never aiortc's public default)."""
    servers = [
        RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
        for s in ice_servers
    ]
    return RTCPeerConnection(
        RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


def check_offer(offer_sdp: str, sources: dict[str, TrackSource]) -> None:
    """Refuse an offer before applying it if it has more than ``MAX_PUBLISH_SECTIONS`` media
    sections, lacks a listed section or is not an offer at all."""
    check_section_count(offer_sdp, MAX_PUBLISH_SECTIONS)
    try:
        description = sdp.SessionDescription.parse(offer_sdp)
    except Exception as exc:
        raise NegotiationError(f"malformed SDP: {exc}") from None
    kinds = {m.rtp.muxId: m.kind for m in description.media}
    for mid, source in sources.items():
        if mid not in kinds:
            raise NegotiationError(f"the offer has no media section with mid {mid!r}")
        if kinds[mid] != source.kind:
            raise NegotiationError(f"mid {mid} is {kinds[mid]}, {source} needs {source.kind}")
    if sources and not any(m.ice and m.ice.usernameFragment for m in description.media):
        raise NegotiationError("the offer has no ICE credentials")


@dataclass
class OfferedTrack:
    """A media section of the publish offer that carries media, and its negotiated codec."""

    mid: str
    source: TrackSource
    codec: CodecInfo
    transceiver: RTCRtpTransceiver


class PublisherConnection:
    """The publish connection: applies the client's offers and feeds producers."""

    def __init__(self, ice_servers: list[IceServerConfig]) -> None:
        self.pc = new_peer_connection(ice_servers)
        self._taps: dict[int, adapter.PublisherTap] = {}
        self.red_allowed = True
        """Take the browser's RED (when the server's ``opus_fec`` is on). Not in an end-to-end
        encrypted room: Chromium's receiver runs its frame decryption on the RED payload, which
        it did not encrypt as one (measured: frames failed to decrypt as soon as RED was on)."""

    async def negotiate(
        self, offer_sdp: str, sources: dict[str, TrackSource], prefer_video: str | None = None
    ) -> tuple[str, list[OfferedTrack]]:
        """Apply an offer; returns the answer SDP and the media sections that carry media.

        ``prefer_video`` (a MIME type) is chosen over the offer's first video codec when offered.
        """
        check_offer(offer_sdp, sources)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:
            raise NegotiationError(f"offer rejected: {exc}") from exc
        offered: list[OfferedTrack] = []
        for transceiver in self.pc.getTransceivers():
            mid = transceiver.mid
            if mid is None or mid not in sources:
                continue
            if not adapter.remote_sends(transceiver):
                continue  # the client no longer sends on this section
            source = sources[mid]
            if transceiver.kind != source.kind:
                raise NegotiationError(
                    f"mid {mid} is {transceiver.kind}, {source} needs {source.kind}"
                )
            codec = adapter.narrow_to_first_codec(
                transceiver, prefer_video if transceiver.kind == "video" else None
            )
            red_on = adapter.OPUS.red and self.red_allowed
            if red_on and codec.mime_type.lower() == "audio/opus":
                opus = adapter.payload_type(adapter.negotiated_codecs(transceiver)[0])
                red = redsdp.offered_red(offer_sdp, mid, opus)
                if red is not None:  # Chromium's redundancy: its previous frame in each packet
                    adapter.accept_red(transceiver, red)
            offered.append(OfferedTrack(mid, source, codec, transceiver))
        try:
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
        except Exception as exc:
            raise NegotiationError(f"cannot answer the offer: {exc}") from exc
        return self.pc.localDescription.sdp, offered

    def bind(self, track: OfferedTrack, producer: Producer) -> None:
        """Forward the media of ``track`` to ``producer``."""
        dtls = adapter.dtls_transport(track.transceiver)
        tap = self._taps.get(id(dtls))
        if tap is None:
            tap = self._taps[id(dtls)] = adapter.PublisherTap(dtls)
        tap.bind(track.transceiver, producer)

    def unbind_mid(self, mid: str) -> None:
        """Stop forwarding a media section (the client stopped sending it)."""
        for transceiver in self.pc.getTransceivers():
            if transceiver.mid == mid:
                for tap in self._taps.values():
                    tap.unbind(transceiver)

    async def close(self) -> None:
        """Close the connection."""
        for tap in self._taps.values():
            tap.close()
        await self.pc.close()


@dataclass
class _Slot:
    producer: Producer
    transceiver: RTCRtpTransceiver
    consumer: Consumer | None = None


class SubscriberConnection:
    """The subscribe connection: one sendonly media section per forwarded track."""

    def __init__(self, ice_servers: list[IceServerConfig], on_consumer: Callable[[int], None]):
        self.pc = new_peer_connection(ice_servers)
        self._slots: dict[str, _Slot] = {}
        self._on_consumer = on_consumer
        self.offer_outstanding = False
        self._watching_dtls = False
        self.downlink = Downlink()
        "What the subscriber's link carries, and what it is sent for it (mcu.sfu.ladder)."
        self.red_allowed = True
        "Offer RED to the subscriber (see :attr:`PublisherConnection.red_allowed`)."

    @property
    def track_ids(self) -> set[str]:
        """Tracks currently carried."""
        return set(self._slots)

    async def offer(self, producers: list[Producer]) -> tuple[str, list[tuple[str, Producer]]]:
        """Make the connection carry exactly ``producers``; returns the offer, (mid, producer)s.
        Raises ``NegotiationError`` when the connection is (or gets) closed meanwhile."""
        try:
            return await self._offer(producers)
        except InvalidStateError:  # closed meanwhile: its participant left or lost it
            raise NegotiationError("the subscribe connection is closed") from None

    async def _offer(self, producers: list[Producer]) -> tuple[str, list[tuple[str, Producer]]]:
        if self.pc.signalingState == "closed":
            raise InvalidStateError("closed")
        wanted = {p.track_id: p for p in producers}
        for track_id in list(self._slots):
            if track_id not in wanted:
                if track_id not in self._slots:  # closed while a sender stopped: it left
                    raise InvalidStateError("closed")
                await self._retire(track_id)
        for track_id, producer in wanted.items():
            if track_id in self._slots:
                continue
            transceiver = self.pc.addTransceiver(
                adapter.IdleTrack(producer.kind, track_id), direction="sendonly"
            )
            adapter.offer_codec(transceiver, producer.codec)
            adapter.set_stream_ids(
                transceiver,
                stream_id=f"{producer.participant_id}-{producer.source}"
                if producer.source is TrackSource.CONTENT
                else producer.participant_id,
                track_id=track_id,
            )
            self._slots[track_id] = _Slot(producer, transceiver)
        offer = await self.pc.createOffer()
        if adapter.OPUS.red and self.red_allowed:  # as RED to browsers that keep it
            opus = {
                p.track_id for p in wanted.values() if p.codec.mime_type.lower() == "audio/opus"
            }
            if opus:
                offer = RTCSessionDescription(sdp=redsdp.with_red(offer.sdp, opus), type="offer")
        await self.pc.setLocalDescription(offer)
        self.offer_outstanding = True
        carried = [(s.transceiver.mid or "", s.producer) for s in self._slots.values()]
        return self.pc.localDescription.sdp, carried

    async def answer(self, answer_sdp: str) -> None:
        """Apply the client's answer and start forwarding to new media sections."""
        if not self.offer_outstanding:
            raise NegotiationError("no subscribe offer is outstanding")
        # An answer has exactly the offer's sections; more would only cost parsing.
        offered = media_section_count(self.pc.localDescription.sdp)
        answered = media_section_count(answer_sdp)
        if answered != offered:
            raise NegotiationError(
                f"the answer has {answered} media sections; the offer has {offered}"
            )
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        except Exception as exc:
            raise NegotiationError(f"answer rejected: {exc}") from exc
        self.offer_outstanding = False
        red = redsdp.answered_red(answer_sdp) if adapter.OPUS.red and self.red_allowed else {}
        for slot in self._slots.values():
            if slot.consumer is None:
                self._start_consumer(slot, red.get(slot.transceiver.mid or ""))

    def _start_consumer(self, slot: _Slot, red_payload_type: int | None = None) -> None:
        transceiver = slot.transceiver
        sender = transceiver.sender
        leg = adapter.consumer_leg(transceiver)
        if red_payload_type is not None:
            leg = dataclasses.replace(leg, red_payload_type=red_payload_type)
        transmitter = adapter.SrtpTransmitter(adapter.dtls_transport(transceiver))
        consumer = (RedConsumer if red_payload_type is not None else Consumer)(
            leg,
            transmitter,
            slot.producer.history,
            slot.producer,
            video=slot.producer.kind == "video",
            sender_report_sink=adapter.sender_report_sink(sender, transmitter),
        )
        consumer.estimate = self.downlink.estimate
        self.downlink.admit(slot.producer, consumer)
        adapter.bind_feedback(sender, consumer)
        slot.consumer = consumer
        slot.producer.add_sink(consumer)
        self._on_consumer(+1)
        dtls = adapter.dtls_transport(transceiver)
        if dtls.state == "connected":
            consumer.on_transport_ready(time.monotonic())
        elif not self._watching_dtls:
            self._watching_dtls = True

            @dtls.on("statechange")  # type: ignore[untyped-decorator]
            def on_dtls_state() -> None:
                if dtls.state == "connected":
                    now = time.monotonic()
                    for ready in self.consumers():
                        ready.on_transport_ready(now)

    async def _retire(self, track_id: str) -> None:
        slot = self._slots.pop(track_id)
        if slot.consumer is not None:
            slot.producer.remove_sink(slot.consumer)
            slot.consumer.close()
            self._on_consumer(-1)
        slot.transceiver.direction = "inactive"
        # The section stays in every later offer; its msid must not collide with the same track
        # coming back in a new section (browsers refuse duplicate msid lines).
        adapter.set_stream_ids(slot.transceiver, "ended", f"{track_id}-ended-{id(slot)}")
        try:
            await slot.transceiver.sender.stop()
        except Exception:  # the connection may already be closing
            logger.debug("sender stop failed", exc_info=True)

    def adapt(self, now: float, speaker: str | None, mix: MixOffer = NO_MIX) -> LinkState:
        """Fit what this subscriber is sent to its downlink estimate (one tick of the ladder)."""
        carried = [(s.producer, s.consumer) for s in self._slots.values() if s.consumer is not None]
        return self.downlink.adapt(now, carried, speaker, mix)

    def consumers(self) -> list[Consumer]:
        """The consumers of this connection."""
        return [s.consumer for s in self._slots.values() if s.consumer is not None]

    async def close(self) -> None:
        """Stop forwarding and close the connection."""
        for track_id in list(self._slots):
            slot = self._slots.pop(track_id)
            if slot.consumer is not None:
                slot.producer.remove_sink(slot.consumer)
                slot.consumer.close()
                self._on_consumer(-1)
        await self.pc.close()


class Closable(Protocol):
    """Anything with an async close (publish, subscribe and WHEP viewer connections)."""

    async def close(self) -> None:
        """Close it."""


async def close_quietly(*connections: Closable | None) -> None:
    """Close connections, never raising (used on every cleanup path)."""
    for connection in connections:
        if connection is None:
            continue
        try:
            await asyncio.wait_for(connection.close(), timeout=5)
        except Exception:
            logger.debug("closing a peer connection failed", exc_info=True)
