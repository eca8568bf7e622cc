"""Live rooms: who is in them, what they publish, and what each one receives."""

from __future__ import annotations

import hmac
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from mcu.infra import heaptrim, metrics
from mcu.media import CodecInfo, TrackSource
from mcu.sfu.peer import (
    MAX_PUBLISH_SECTIONS,
    IceServerConfig,
    NegotiationError,
    PublisherConnection,
    SubscriberConnection,
    check_section_count,
    close_quietly,
)
from mcu.sfu.producer import Producer
from mcu.sfu.stage import Stage
from mcu.sfu.turn import ClientIceServers
from mcu.signaling.rooms.audience import Audience
from mcu.signaling.rooms.content import SLIDES_MID, ContentChannel
from mcu.signaling.rooms.errors import InvalidRequest
from mcu.signaling.rooms.events import (
    NO_EVENTS,
    EventSink,
    ParticipantJoined,
    ParticipantLeft,
    RoomEvent,
    RoomFinished,
    RoomStarted,
)
from mcu.signaling.rooms.hands import Hands
from mcu.signaling.rooms.links import LinkWatch
from mcu.signaling.rooms.mixing import RoomMix
from mcu.signaling.rooms.participant import (
    Participant,
    PublishedTrack,
    Role,
    SendFn,
    SharedMessage,
    send_quietly,
)
from mcu.signaling.rooms.reconnect import Reconnects, resume_tracks
from mcu.signaling.rooms.recording import RecordingServices, RoomRecording
from mcu.signaling.rooms.speaker import ActiveSpeaker
from mcu.signaling.rooms.stage import refresh_stage
from mcu.signaling.rooms.welcome import joined_message

logger = logging.getLogger(__name__)

RoomKind = Literal["meeting", "lecture"]


class Room:
    """A live room: who is in it, what they publish and what each one receives.

    Its features (content, mix, recording, speaker, audience, hands) each hold it as a
    :class:`~mcu.signaling.rooms.ports.RoomView` or ``RoomPort``, which it satisfies.
    """

    def __init__(
        self,
        room_id: str,
        title: str,
        ice_servers: list[IceServerConfig],
        recording: RecordingServices | None = None,
        kind: RoomKind = "meeting",
        client_ice: ClientIceServers | None = None,
        events: EventSink = NO_EVENTS,
        reconnect_grace: float = 0.0,
        adapt_downlinks: bool = True,
    ) -> None:
        self.id = room_id
        self.title = title
        self.kind: RoomKind = kind
        self.e2ee = False
        "Browsers encrypt the media end to end: nothing that needs plaintext (docs/e2ee.md)."
        self.stage = Stage(room_id)
        "What viewers receive (WHEP sessions here and relays to other workers)."
        self.viewer_sessions: dict[str, Callable[[], Awaitable[None]]] = {}
        "Closers of WHEP sessions and relays following this room's stage, by session id."
        self.ice_servers = ice_servers
        "STUN/TURN servers of the server's own peer connections."
        self.client_ice = client_ice or ClientIceServers(configured=tuple(ice_servers))
        "What each participant is handed in ``joined`` (a TURN credential of its own)."
        self.participants: dict[str, Participant] = {}
        self._track_ids = itertools.count(1)
        self.ending = False
        self.events = events
        "Where this room's events go (the platform's webhooks)."
        self._session_live = False
        "Between ``room.started`` and ``room.finished``: someone is (or was just) in it."
        self._end_reason = "empty"
        self.speaker = ActiveSpeaker(self)
        self.links = LinkWatch(self, adapt=adapt_downlinks)
        self.audience = Audience(self)
        self.hands = Hands(self)
        self.content = ContentChannel(self)
        self.mix = RoomMix(self)
        self.recording = RoomRecording(self, recording)
        self.reconnects = Reconnects(self, reconnect_grace)
        "Participants whose connection was lost, kept for ``reconnect_grace`` seconds."

    # -- membership --------------------------------------------------------------------------

    async def add(
        self, name: str, role: Role, send: SendFn, *, subscribe: bool = True
    ) -> Participant:
        """Admit a participant, tell the others, and start their subscriptions.

        ``subscribe=False`` makes no subscribe connection (WHIP publishers; lecture viewers that
        receive the stage over WHEP).
        """
        participant = Participant(id="p" + secrets.token_hex(4), name=name, role=role, send=send)
        if subscribe:
            self.attach_subscriber(participant)
        if not self._session_live:
            self._session_live = True
            self.emit(RoomStarted(self.id, self.kind, self.title))
        self.participants[participant.id] = participant
        if self._told_of(participant):
            self.emit(ParticipantJoined(self.id, participant.id, name, role))
        metrics.PARTICIPANTS.labels(role).inc()
        self.speaker.start()
        await self.welcome(participant, resumed=False)
        if participant.visible:
            await self.broadcast(
                {"type": "participant_joined", "participant": participant.describe()},
                exclude=participant.id,
            )
        else:
            self.audience.viewers_changed()
        if self.mix.mode_of(participant) == "mixed":
            await self.mix.refresh()
        await self.resubscribe(participant)
        return participant

    def attach_subscriber(self, participant: Participant) -> None:
        """Give ``participant`` a (new) subscribe connection; offers follow from ``resubscribe``."""
        participant.subscriber = SubscriberConnection(self.ice_servers, _count_consumers)
        participant.subscriber.red_allowed = not self.e2ee
        self._watch(participant, participant.subscriber.pc)
        self.links.start()

    async def welcome(self, participant: Participant, *, resumed: bool) -> None:
        """Send ``participant`` its ``joined``: the room as it is now (after a resume too)."""
        await participant.send(joined_message(self, participant, resumed=resumed))

    async def remove(
        self, participant: Participant, reason: Literal["left", "disconnected", "removed"]
    ) -> None:
        """Take a participant out: end their tracks for everyone and close their connections."""
        if participant.closed:
            return
        participant.closed = True
        self.reconnects.forget(participant)
        logger.info("room %s: %s left (%s)", self.id, participant.id, reason)
        self.participants.pop(participant.id, None)
        metrics.PARTICIPANTS.labels(participant.role).dec()
        if self._told_of(participant):
            self.emit(ParticipantLeft(self.id, participant.id, participant.role, reason))
        await self.content.participant_left(participant)
        for mid in list(participant.tracks):
            await self._unpublish(participant, mid, resubscribe=False)
        await self.speaker.forget(participant.id)
        if participant.visible:
            await self.broadcast(
                {"type": "participant_left", "participant_id": participant.id, "reason": reason}
            )
        else:
            self.audience.viewers_changed()
            if participant.hand_raised:
                await self.hands.announce()
        await close_quietly(participant.publisher, participant.subscriber)
        await self.refresh_subscriptions()
        if participant.on_removed is not None:
            participant.on_removed()
        if not self.participants:
            await self.recording.stop()  # nobody left to record
        if not self.participants:
            self.speaker.stop()
            self.audience.stop()
            heaptrim.released()  # its buffers and connections: back to the system soon
            if self._session_live:  # once, though removals of the last ones may overlap
                self._session_live = False
                self.emit(RoomFinished(self.id, self._end_reason))

    async def end(self, reason: str) -> None:
        """End the room: tell everyone first, then disconnect them (no renegotiation meanwhile)."""
        self.ending = True
        self._end_reason = reason
        self.reconnects.close()
        for close in list(self.viewer_sessions.values()):
            try:
                await close()
            except Exception:
                logger.exception("room %s: closing a viewer session failed", self.id)
        self.viewer_sessions.clear()
        await self.recording.close()
        await self.content.close()
        await self.mix.close()
        everyone = list(self.participants.values())
        for participant in everyone:
            await send_quietly(participant, {"type": "room_ended", "reason": reason})
        for participant in everyone:
            await self.remove(participant, "removed")

    async def broadcast(self, message: dict[str, Any], exclude: str | None = None) -> None:
        """Send ``message`` to every participant but ``exclude``."""
        if self.ending:
            return
        shared = SharedMessage(message)  # encoded once, by the first writer, for everyone
        for participant in list(self.participants.values()):
            if participant.id != exclude:
                await send_quietly(participant, shared)

    def emit(self, event: RoomEvent) -> None:
        """Tell the world outside the room (the platform's webhooks) what happened in it."""
        self.events.emit(event)

    def _told_of(self, participant: Participant) -> bool:
        """Whether the platform hears of this participant coming and going: everyone but a
        lecture's audience, which it hears of as a count (``lesson.viewers_peak``)."""
        return participant.visible or self.kind != "lecture"

    def _watch(self, participant: Participant, pc: Any) -> None:
        async def on_state() -> None:
            # A lost connection usually ends "closed", not "failed": when ICE consent expires
            # (RFC 7675: 30 s unanswered, e.g. after the server stalled), aiortc closes the DTLS
            # transport and with it the whole connection. Only removal closes it otherwise, or a
            # lost WebSocket (reconnect.py), after which it is no longer the participant's.
            if pc.connectionState not in ("failed", "closed") or participant.closed:
                return
            if pc not in [c.pc for c in (participant.publisher, participant.subscriber) if c]:
                return
            logger.info("room %s: %s connection %s", self.id, participant.id, pc.connectionState)
            # A client that can resume (it has a WebSocket) gets the grace period to do so.
            resumable = participant.on_detached is not None
            if not (resumable and await self.reconnects.suspend(participant)):
                await self.remove(participant, "disconnected")

        pc.on("connectionstatechange", on_state)

    # -- publishing --------------------------------------------------------------------------

    async def publish(
        self, participant: Participant, offer_sdp: str, sources: dict[str, TrackSource]
    ) -> tuple[str, list[dict[str, str]]]:
        """Apply a publish offer; returns the answer and the mid → track id mapping."""
        try:
            # Before the floor is claimed or a peer connection made for it.
            check_section_count(offer_sdp, MAX_PUBLISH_SECTIONS)
        except NegotiationError as exc:
            raise InvalidRequest(str(exc), code="bad_sdp") from None
        seen: set[TrackSource] = set()
        for source in sources.values():
            if source in seen:
                raise InvalidRequest(f"source {source} is listed twice")
            seen.add(source)
        streaming = any(
            t.producer.source is TrackSource.CONTENT and mid != SLIDES_MID
            for mid, t in participant.tracks.items()
        )
        if TrackSource.CONTENT in seen and not streaming:
            await self.content.claim_for_stream(participant)
        async with participant.negotiation_lock:
            if participant.publisher is None:
                participant.publisher = PublisherConnection(self.ice_servers)
                participant.publisher.red_allowed = not self.e2ee
                self._watch(participant, participant.publisher.pc)
            try:
                # A recorded room prefers H.264: MP4 then holds a copy instead of a transcode.
                # A lecture prefers it too: every stage slot of a WHEP viewer then has one codec.
                # An end-to-end encrypted room takes VP8, which its frame format keeps parseable.
                prefer = "video/H264" if self.recording.active or self.kind == "lecture" else None
                prefer = "video/VP8" if self.e2ee else prefer
                answer, offered = await participant.publisher.negotiate(offer_sdp, sources, prefer)
            except NegotiationError as exc:
                raise InvalidRequest(str(exc), code="bad_sdp") from None
            live = {t.mid: t for t in offered}
            if participant.tracks_to_resume:  # the first publish after a resume

                async def end(mid: str) -> None:
                    await self._unpublish(participant, mid, resubscribe=False)

                await resume_tracks(participant, live, end)
            for mid in list(participant.tracks):
                track = participant.tracks[mid]
                if mid == SLIDES_MID:
                    continue  # server-rendered, not part of the client's offer
                if mid not in live or live[mid].source is not track.producer.source:
                    await self._unpublish(participant, mid, resubscribe=False)
            added: list[PublishedTrack] = []
            for mid, offered_track in live.items():
                if mid in participant.tracks:
                    continue
                producer = self.new_producer(participant, offered_track.source, offered_track.codec)
                participant.publisher.bind(offered_track, producer)
                track = PublishedTrack(producer, mid)
                participant.tracks[mid] = track
                metrics.TRACKS.labels(producer.kind).inc()
                added.append(track)
            mapping = [
                {"mid": mid, "track_id": t.producer.track_id}
                for mid, t in participant.tracks.items()
                if mid != SLIDES_MID
            ]
        await self._announce(participant, added)
        if any(t.producer.source is TrackSource.CONTENT for t in added):
            await self.content.stream_published(participant)
        return answer, mapping

    def new_producer(
        self, participant: Participant, source: TrackSource, codec: CodecInfo
    ) -> Producer:
        """A producer with a fresh track id; its keyframe requests are wired by whoever feeds it."""
        return self.make_producer(participant.id, source, codec)

    def make_producer(self, participant_id: str, source: TrackSource, codec: CodecInfo) -> Producer:
        """A producer in the name of ``participant_id`` (or the mix)."""
        return Producer(
            track_id=f"t{next(self._track_ids)}",
            participant_id=participant_id,
            source=source,
            codec=codec,
            send_keyframe_request=lambda: None,
        )

    @property
    def active_speaker(self) -> str | None:
        """The participant currently detected as speaking."""
        return self.speaker.current

    async def refresh_subscriptions(self, *, exclude: Participant | None = None) -> None:
        """Bring the stage, the mix and every subscribe connection in line with the room."""
        await refresh_stage(self, self.stage)
        await self.mix.refresh()
        for other in list(self.participants.values()):
            if other is not exclude:
                await self.resubscribe(other)

    async def publish_server_track(
        self, participant: Participant, key: str, producer: Producer
    ) -> None:
        """Publish a track the server produces itself (slides) in ``participant``'s name."""
        track = PublishedTrack(producer, key)
        participant.tracks[key] = track
        metrics.TRACKS.labels(producer.kind).inc()
        await self._announce(participant, [track])

    async def _announce(self, participant: Participant, added: list[PublishedTrack]) -> None:
        for track in added:
            self.recording.track_published(track.producer)
        for track in added:
            await self.broadcast(
                {"type": "track_published", "track": track.describe()}, exclude=participant.id
            )
        await self.refresh_subscriptions(exclude=participant)

    async def unpublish(self, participant: Participant, mid: str) -> None:
        """End one of ``participant``'s tracks for everyone."""
        if mid in participant.tracks:
            await self._unpublish(participant, mid, resubscribe=True)

    async def _unpublish(self, participant: Participant, mid: str, *, resubscribe: bool) -> None:
        track = participant.tracks.pop(mid)
        if participant.publisher is not None:
            participant.publisher.unbind_mid(mid)
        track.producer.close()
        metrics.TRACKS.labels(track.producer.kind).dec()
        if track.producer.source is TrackSource.CONTENT and mid != SLIDES_MID:
            await self.content.stream_unpublished(participant)
        await self.broadcast(
            {
                "type": "track_unpublished",
                "track_id": track.producer.track_id,
                "participant_id": participant.id,
            }
        )
        if resubscribe:
            await self.refresh_subscriptions()

    # -- subscribing -------------------------------------------------------------------------

    def producers(self) -> list[Producer]:
        """Every live producer in the room."""
        return [t.producer for p in self.participants.values() for t in p.tracks.values()]

    async def resubscribe(self, participant: Participant) -> None:
        """Renegotiate ``participant``'s subscribe connection if what it should carry changed."""
        subscriber = participant.subscriber
        if participant.closed or subscriber is None or self.ending:
            return
        # Checked and offered under one lock: making an offer awaits (ICE gathering), and two
        # publishes at once both found no offer outstanding, so the second offer replaced the
        # first before the client answered it, and that answer was refused.
        async with participant.negotiation_lock:
            if subscriber.offer_outstanding:
                participant.resubscribe_pending = True  # the next offer waits for the answer
                return
            if self.mix.mode_of(participant) == "mixed" and self.mix.session is not None:
                wanted = self.mix.wanted(participant)
            else:
                wanted = [p for p in self.producers() if participant.wants(p)]
            if {p.track_id for p in wanted} == subscriber.track_ids:
                return
            try:
                sdp, carried = await subscriber.offer(wanted)
            except NegotiationError as exc:  # it closed meanwhile (a leave, a lost connection)
                logger.debug("no subscribe offer for %s: %s", participant.id, exc)
                return
        await send_quietly(
            participant,
            {
                "type": "subscribe_offer",
                "sdp": sdp,
                "tracks": [
                    {
                        "mid": mid,
                        "track_id": p.track_id,
                        "participant_id": p.participant_id,
                        "kind": p.kind,
                        "source": str(p.source),
                    }
                    for mid, p in carried
                ],
            },
        )

    async def subscribe_answer(self, participant: Participant, answer_sdp: str) -> None:
        """Apply the answer to the last subscribe offer; send the next one if changes waited."""
        assert participant.subscriber is not None
        async with participant.negotiation_lock:
            try:
                await participant.subscriber.answer(answer_sdp)
            except NegotiationError as exc:
                raise InvalidRequest(str(exc), code="bad_sdp") from None
        if participant.resubscribe_pending:
            participant.resubscribe_pending = False
            await self.resubscribe(participant)

    # -- mute and chair actions --------------------------------------------------------------

    def track_by_source(self, participant: Participant, source: str) -> PublishedTrack | None:
        """The participant's published track of ``source``."""
        return next((t for t in participant.tracks.values() if t.producer.source == source), None)

    async def set_muted(
        self, participant: Participant, source: str, muted: bool, by: Literal["self", "chair"]
    ) -> None:
        """Record and announce a mute change; the chair's mute also stops forwarding."""
        track = self.track_by_source(participant, source)
        if track is None:
            raise InvalidRequest(f"{participant.id} publishes no {source}")
        track.muted, track.muted_by = muted, by
        track.producer.paused = muted and by == "chair"
        await self.broadcast(
            {
                "type": "track_muted",
                "track_id": track.producer.track_id,
                "participant_id": participant.id,
                "source": source,
                "muted": muted,
                "by": by,
            }
        )

    # -- lectures: promoting and demoting speakers -----------------------------------------

    async def promote(self, participant: Participant) -> None:
        """A viewer becomes a speaker: may publish, and everyone sees them."""
        if participant.visible:
            raise InvalidRequest(f"{participant.id} is not a viewer")
        metrics.PARTICIPANTS.labels(participant.role).dec()
        participant.role = "participant"
        participant.hand_raised = False
        # Last in order: the stage gives a newly promoted speaker the next section.
        self.participants[participant.id] = self.participants.pop(participant.id)
        metrics.PARTICIPANTS.labels(participant.role).inc()
        if self.kind == "lecture":  # out of the counted audience, onto the stage
            self.emit(ParticipantJoined(self.id, participant.id, participant.name, "participant"))
        await send_quietly(
            participant, {"type": "role", "participant_id": participant.id, "role": "participant"}
        )
        await self.broadcast(
            {"type": "participant_joined", "participant": participant.describe()},
            exclude=participant.id,
        )
        self.audience.viewers_changed()
        await self.hands.announce()

    async def demote(self, participant: Participant) -> None:
        """A speaker goes back to watching: their tracks end and others stop seeing them."""
        if not participant.visible or participant.role == "chair":
            raise InvalidRequest(f"{participant.id} is not a speaker")
        await self.content.participant_left(participant)
        for mid in list(participant.tracks):
            await self._unpublish(participant, mid, resubscribe=False)
        metrics.PARTICIPANTS.labels(participant.role).dec()
        if self.kind == "lecture":
            self.emit(ParticipantLeft(self.id, participant.id, participant.role, "demoted"))
        participant.role = "viewer"
        metrics.PARTICIPANTS.labels(participant.role).inc()
        await self.speaker.forget(participant.id)
        await send_quietly(
            participant, {"type": "role", "participant_id": participant.id, "role": "viewer"}
        )
        await self.broadcast(
            {"type": "participant_left", "participant_id": participant.id, "reason": "demoted"},
            exclude=participant.id,
        )
        self.audience.viewers_changed()
        await self.refresh_subscriptions()


def _count_consumers(delta: int) -> None:
    metrics.CONSUMERS.inc(delta)


class Rooms:
    """All live rooms of this process (the admin API's view of live state)."""

    def __init__(
        self,
        ice_servers: list[IceServerConfig],
        recording: RecordingServices | None = None,
        client_ice: ClientIceServers | None = None,
        events: EventSink = NO_EVENTS,
        reconnect_grace: float = 0.0,
        adapt_downlinks: bool = True,
    ) -> None:
        self.ice_servers = ice_servers
        self.reconnect_grace = reconnect_grace
        self.adapt_downlinks = adapt_downlinks
        "Fit what each subscriber is sent to its link (off: everyone gets everything)."
        "Seconds a participant whose connection was lost is kept for its client to resume."
        self.client_ice = client_ice
        self.recording = recording
        self.events = events
        "Where every room's events go."
        self.rooms: dict[str, Room] = {}

    def get_or_create(
        self, room_id: str, title: str, kind: RoomKind = "meeting", e2ee: bool = False
    ) -> Room:
        """The live room, created on first join."""
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = Room(
                room_id,
                title,
                self.ice_servers,
                self.recording,
                kind,
                self.client_ice,
                self.events,
                self.reconnect_grace,
                self.adapt_downlinks,
            )
            metrics.ROOMS.set(len(self.rooms))
        room.kind = kind  # an administrator may have changed it since the session began
        room.e2ee = e2ee
        return room

    def participant_by_token(self, room_id: str, token: str) -> tuple[Room, Participant] | None:
        """The live participant a session token belongs to."""
        room = self.rooms.get(room_id)
        if room is None:
            return None
        for participant in room.participants.values():
            if hmac.compare_digest(participant.session_token, token):
                return room, participant
        return None

    def discard_if_empty(self, room: Room) -> None:
        """Forget a room nobody is in."""
        if not room.participants and not room.viewer_sessions and self.rooms.get(room.id) is room:
            del self.rooms[room.id]
            metrics.ROOMS.set(len(self.rooms))

    def participant_count(self, room_id: str) -> int:
        """Participants in a live room, viewers not included (0 if it is not live)."""
        room = self.rooms.get(room_id)
        return sum(1 for p in room.participants.values() if p.visible) if room else 0

    def retitle(self, room_id: str, title: str) -> None:
        """A live room's title was changed: newcomers and new recordings get the new one."""
        room = self.rooms.get(room_id)
        if room is not None:
            room.title = title

    async def end_room(self, room_id: str, reason: str) -> None:
        """End a live room (the room was deleted, or the chair ended it)."""
        room = self.rooms.get(room_id)
        if room is not None:
            await room.end(reason)
            self.discard_if_empty(room)

    async def set_recording(self, room_id: str, active: bool) -> dict[str, Any] | None:
        """Start or stop recording a live room (the admin API); None when it is not live."""
        room = self.rooms.get(room_id)
        if room is None or not room.participants:
            return None
        return await room.recording.set_active(active)

    async def close_all(self) -> None:
        """Server shutdown: end every room, closing every peer connection."""
        for room_id in list(self.rooms):
            await self.end_room(room_id, "server shutting down")

    def stats(self) -> dict[str, int]:
        """Totals for health checks and metrics."""
        participants = sum(len(r.participants) for r in self.rooms.values())
        return {"rooms": len(self.rooms), "participants": participants, "time": int(time.time())}
