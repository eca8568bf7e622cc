"""The WebSocket endpoint: reads client frames, validates them, and drives the room."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from mcu.contracts.cluster import JOIN_WITHIN_HEADER
from mcu.infra import metrics
from mcu.infra.auditlog import AuditTrail, Detail
from mcu.infra.httpapi import STORE_UNAVAILABLE
from mcu.infra.socketlimits import FrameRate, SocketLimits, refuse_websocket
from mcu.media import TrackSource
from mcu.signaling.endpoints.messages import (
    Chair,
    ClientMessage,
    Floor,
    Hand,
    Join,
    Leave,
    Mute,
    Ping,
    ProtocolError,
    Publish,
    Slides,
    SubscribeAnswer,
    Subscription,
    parse_client_message,
)
from mcu.signaling.rooms.admission import (
    Credential,
    Entry,
    InviteToken,
    Password,
    PlatformToken,
    Refused,
)
from mcu.signaling.rooms.e2ee import E2eeRefused, check_client
from mcu.signaling.rooms.entrance import Entrance
from mcu.signaling.rooms.errors import ResumeRefused, RoomError
from mcu.signaling.rooms.mixing import parse_spec
from mcu.signaling.rooms.participant import Participant, SharedMessage
from mcu.signaling.rooms.session import Room, Rooms
from mcu.signaling.rooms.store import StoreUnavailable

logger = logging.getLogger(__name__)

# aiohttp closes the socket (1009) beyond this; below it, oversize frames get a polite error.
HARD_FRAME_LIMIT = 1024 * 1024
# Messages waiting for a client that does not read. Beyond this the client is too slow to follow
# the room and is disconnected: one stalled socket must never hold up a broadcast to hundreds.
OUTBOX_MESSAGES = 256
# How long a closing connection waits for its last messages (room_ended, removed) to go out.
FLUSH_SECONDS = 2.0
# Seconds added to the join deadline a front passes on, for the first frame's trip to a worker.
FORWARDED_JOIN_GRACE = 0.5


@dataclass
class SignalingServices:
    """What a client connection needs from the server."""

    rooms: Rooms
    entrance: Entrance
    "Admits joins, WHIP publishers and WHEP viewers."
    max_message_bytes: int
    sockets: SocketLimits
    "Caps on open WebSockets and the join deadline."
    behind_front: bool = False
    "This process is a worker: the front's ``X-Mcu-Join-Within`` header is trusted."
    audit: AuditTrail | None = None
    "Where joins, leaves and chair actions are recorded (None: not recorded)."


SIGNALING = web.AppKey("signaling", SignalingServices)
"""Where the server application keeps what client connections need."""


class ClientConnection:
    """One WebSocket client: at most one participant in one room."""

    def __init__(self, ws: web.WebSocketResponse, address: str, services: SignalingServices):
        self.ws = ws
        self.address = address
        self.services = services
        self.participant: Participant | None = None
        self.room: Room | None = None
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(OUTBOX_MESSAGES)
        self._writer: asyncio.Task[None] | None = None
        self._too_slow = False
        self._closing: asyncio.Future[None] | None = None
        self._joined = False
        self._rate = FrameRate()

    def _record(self, action: str, participant: Participant, room: Room, **details: Detail) -> None:
        """Record ``participant``'s ``action`` in ``room`` on the audit trail."""
        audit = self.services.audit
        if audit is not None:
            audit.record(
                action,
                actor=participant.name,
                room=room.id,
                address=self.address,
                details={"participant": participant.id, "role": participant.role} | details,
            )

    async def send(self, message: dict[str, Any]) -> None:
        """Queue one message; a writer task sends them in order, so callers never wait on a slow
        client (a broadcast to a lecture's viewers must not stall on one of them)."""
        if self.ws.closed or self._too_slow:
            return
        try:
            self._outbox.put_nowait(message)
        except asyncio.QueueFull:
            self._too_slow = True
            logger.warning("%s: %d messages unread; disconnecting", self.address, OUTBOX_MESSAGES)
            self._closing = asyncio.ensure_future(self._close_slow())
            return
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())

    async def _close_slow(self) -> None:
        await self.ws.close(code=1008, message=b"too slow")

    async def _write(self) -> None:
        while True:
            message = await self._outbox.get()
            try:
                if not self.ws.closed:
                    if isinstance(message, SharedMessage):  # encoded once, for everyone
                        await self.ws.send_str(message.text())
                    else:
                        await self.ws.send_json(message)
            except Exception:  # a dead socket is cleaned up by the reader
                logger.debug("send to %s failed", self.address, exc_info=True)
            finally:
                self._outbox.task_done()

    async def flush(self) -> None:
        """Wait (bounded) until queued messages are written."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), FLUSH_SECONDS)

    async def stop_writer(self) -> None:
        """Flush, then stop the writer task (the connection is over)."""
        if self._writer is not None:
            if not self.ws.closed:
                await self.flush()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None

    async def run(self, join_within: float) -> None:
        """Read frames until the socket closes, then leave the room.

        A socket that has not joined a room ``join_within`` seconds after this call is closed
        (1008). The deadline is absolute: pings, pongs and refused joins do not extend it.
        """
        deadline = asyncio.get_running_loop().time() + join_within
        try:
            while True:
                try:
                    frame = await self._next_frame(None if self._joined else deadline)
                except TimeoutError:
                    await self._join_timed_out()
                    break
                if frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    break
                if frame.type == WSMsgType.TEXT:
                    verdict = await self._rate_verdict()
                    if verdict == "close":
                        break
                    if verdict == "handle":
                        await self._handle_text(frame.data)
                elif frame.type == WSMsgType.BINARY:
                    await self._reply_error(
                        ProtocolError("bad_message", "binary frames are not used")
                    )
                elif frame.type == WSMsgType.ERROR:
                    break
                if self.ws.closed:
                    break
        finally:
            await self._leave("disconnected")

    async def _next_frame(self, deadline: float | None) -> WSMessage:
        if deadline is None:
            return await self.ws.receive()
        # Around the whole receive: aiohttp's own timeout restarts at every ping and pong.
        async with asyncio.timeout_at(deadline):
            return await self.ws.receive()

    async def _rate_verdict(self) -> Literal["handle", "drop", "close"]:
        """Whether to handle the frame just read, drop it, or stop (the socket was closed).

        A frame over the socket's rate is dropped, answered with at most one ``rate_limited``
        error a second; a socket that keeps flooding is closed (1008).
        """
        now = time.monotonic()
        if self._rate.take(now):
            return "handle"
        sockets = self.services.sockets
        sockets.frames_dropped += 1
        if self._rate.should_close():
            sockets.flood_closes += 1
            logger.info("%s: WebSocket closed for flooding", self.address)
            await self.flush()  # the rate_limited error first (bounded: FLUSH_SECONDS)
            await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too many messages")
            return "close"
        if self._rate.should_warn(now):
            await self._reply_error(
                ProtocolError(
                    "rate_limited",
                    f"over {self._rate.rate:g} messages a second; this one was dropped",
                    retry_after=1.0,
                )
            )
        return "drop"

    async def _join_timed_out(self) -> None:
        sockets = self.services.sockets
        sockets.join_timed_out()
        reason = sockets.join_timeout_reason
        logger.debug("%s: %s; closing", self.address, reason)
        await self._reply_error(ProtocolError("join_timeout", f"{reason}; connect again to join"))
        await self.flush()
        await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason.encode())

    async def _handle_text(self, text: str) -> None:
        if len(text) > self.services.max_message_bytes:
            await self._reply_error(
                ProtocolError(
                    "too_large",
                    f"frame of {len(text)} bytes exceeds {self.services.max_message_bytes}",
                )
            )
            return
        try:
            message = parse_client_message(text)
            await self._dispatch(message)
        except ProtocolError as exc:
            await self._reply_error(exc)
        except RoomError as exc:  # refused by the room outside a request's own handling
            await self._reply_error(ProtocolError.from_room(exc))
        except Exception:
            logger.exception("internal error handling a %s frame", _type_of(text))
            await self._reply_error(ProtocolError("internal", "internal server error"))

    async def _reply_error(self, exc: ProtocolError) -> None:
        metrics.SIGNALING_ERRORS.labels(exc.code).inc()
        with contextlib.suppress(Exception):
            await self.send(exc.to_message())

    async def _dispatch(self, message: ClientMessage) -> None:
        try:
            await self._dispatch_to_room(message)
        except StoreUnavailable as exc:  # a cluster's Redis failing over: the client retries
            logger.warning("%s: %s", type(message).__name__, exc)
            raise ProtocolError(
                STORE_UNAVAILABLE,
                "the room store does not answer; try again",
                request_id=message.id,
                retry_after=1,
            ) from None

    async def _dispatch_to_room(self, message: ClientMessage) -> None:
        if isinstance(message, Ping):
            await self.send(_reply({"type": "pong"}, message.id))
            return
        if isinstance(message, Join):
            await self._join(message)
            return
        participant, room = self.participant, self.room
        if participant is None or room is None:
            raise ProtocolError("not_joined", "join a room first", request_id=message.id)
        try:
            if isinstance(message, Publish):
                if not participant.visible:
                    raise ProtocolError("forbidden", "viewers do not publish; raise your hand")
                sources = {t.mid: TrackSource(t.source) for t in message.tracks}
                answer, tracks = await room.publish(participant, message.sdp, sources)
                await self.send(
                    _reply({"type": "publish_answer", "sdp": answer, "tracks": tracks}, message.id)
                )
            elif isinstance(message, SubscribeAnswer):
                await room.subscribe_answer(participant, message.sdp)
            elif isinstance(message, Subscription):
                participant.wanted_sources = frozenset(message.sources)
                participant.wanted_participants = (
                    frozenset(message.participants) if message.participants is not None else None
                )
                if message.mode is not None:
                    room.mix.choose(participant, message.mode)
                participant.mix_spec = parse_spec(
                    message.layout, message.resolution, message.bitrate, message.page,
                    participant.mix_spec,
                )  # fmt: skip
                await room.mix.refresh()
                await room.resubscribe(participant)
            elif isinstance(message, Mute):
                await room.set_muted(participant, message.source, message.muted, "self")
            elif isinstance(message, Chair):
                await self._chair(message, participant, room)
            elif isinstance(message, Floor):
                if message.action == "request":
                    await room.content.request_floor(participant)
                else:
                    await room.content.release_floor(participant)
            elif isinstance(message, Slides):
                if message.action == "show":
                    await room.content.show(participant, message.document_id, message.page or 1)
                elif message.action == "page":
                    if message.page is None:
                        raise ProtocolError("bad_page", "page needs a page number")
                    await room.content.turn_page(participant, message.page)
                else:
                    await room.content.stop(participant)
            elif isinstance(message, Hand):
                await room.hands.set_hand(participant, message.raised)
            elif isinstance(message, Leave):
                await self._leave("left")
                await self.flush()
                await self.ws.close()
        except ProtocolError as exc:
            exc.request_id = exc.request_id if exc.request_id is not None else message.id
            raise
        except RoomError as exc:  # the room refused: the client gets its code and message
            raise ProtocolError.from_room(exc, message.id) from None

    async def _join(self, message: Join) -> None:
        services = self.services
        if self.participant is not None:
            raise ProtocolError(
                "already_joined", "this connection is already in a room", request_id=message.id
            )
        if message.resume is not None:
            await self._resume(message)
            return
        given = [c for c in (message.password, message.invite, message.token) if c is not None]
        if len(given) > 1:
            raise ProtocolError(
                "bad_message",
                "join needs one of a password, an invite or a token",
                request_id=message.id,
            )
        credential: Credential = (
            Password(message.password)
            if message.password is not None
            else InviteToken(message.invite)
            if message.invite is not None
            else PlatformToken(message.token)
            if message.token is not None
            else None
        )
        try:
            admitted = await services.entrance.admit(
                Entry.JOIN, message.room, credential, self.address, message.name
            )
        except Refused as exc:
            # A join without a credential is a malformed message in this protocol.
            code = "bad_message" if exc.code == "no_credential" else exc.code
            raise ProtocolError(
                code, exc.message, request_id=message.id, retry_after=exc.retry_after
            ) from None
        record, role = admitted.record, admitted.role
        try:
            check_client(record.e2ee, message.e2ee)
        except E2eeRefused as exc:
            raise ProtocolError.from_room(exc, message.id) from None
        # The platform's token names its holder; anyone else says who they are.
        name = admitted.name or message.name
        if name is None:
            raise ProtocolError("bad_message", "join needs a name", request_id=message.id)
        room = services.rooms.get_or_create(record.id, record.title, record.kind, record.e2ee)
        self.room = room

        async def send_joined_then_events(msg: dict[str, Any]) -> None:
            if msg.get("type") == "joined":
                msg = _reply(msg, message.id)
            await self.send(msg)

        first = not room.participants
        participant = await room.add(
            name, role, send_joined_then_events, subscribe=message.media == "connection"
        )
        self._record(
            "room.joined",
            participant,
            room,
            via="websocket",
            credential="invite" if message.invite is not None else "password",
        )
        # An end-to-end encrypted room is never recorded (the admin API refuses the pair too).
        if first and record.auto_record and not record.e2ee and not room.recording.active:
            await room.recording.start()  # the room is set to record automatically
            if services.audit is not None:
                services.audit.record("recording.started", actor="system", room=room.id)
        participant.on_removed = self._on_removed_by_room
        participant.on_detached = self._on_detached_by_room
        self.participant = participant
        self._joined = True
        # Ids only: names are personal data.
        logger.info("room %s: %s joined as %s", room.id, participant.id, role)

    async def _resume(self, message: Join) -> None:
        """Come back as the participant whose connection was lost (docs/protocol.md, Resuming).

        No admission: the resume token is the participant's own, handed out in its ``joined``,
        and the session it resumes was admitted. It is never logged.
        """
        assert message.resume is not None
        room = self.services.rooms.rooms.get(message.room)

        async def send_joined_then_events(msg: dict[str, Any]) -> None:
            if msg.get("type") == "joined":
                msg = _reply(msg, message.id)
            await self.send(msg)

        try:
            if room is None:
                raise ResumeRefused()
            participant = await room.reconnects.resume(
                message.resume.participant_id,
                message.resume.token,
                send_joined_then_events,
                subscribe=message.media == "connection",
            )
        except RoomError as exc:
            raise ProtocolError.from_room(exc, message.id) from None
        self.room = room
        participant.on_removed = self._on_removed_by_room
        participant.on_detached = self._on_detached_by_room
        self.participant = participant
        self._joined = True
        self._record("room.resumed", participant, room, via="websocket")

    async def _chair(self, message: Chair, participant: Participant, room: Room) -> None:
        if participant.role != "chair":
            raise ProtocolError("forbidden", "only the chair can do that")
        if message.action == "end":
            self._record("chair.end", participant, room)
            await room.end("ended by the chair")
            self.services.rooms.discard_if_empty(room)
            return
        if message.action == "record":
            if message.active is None:
                raise ProtocolError("bad_message", "record needs active: true or false")
            await room.recording.set_active(message.active)
            self._record("chair.record", participant, room, active=message.active)
            return
        if message.action == "room_mode":
            if message.mode is None:
                raise ProtocolError("bad_message", "room_mode needs a mode")
            room.mix.allow(message.mode)
            room.mix.default_mode = message.mode
            self._record("chair.room_mode", participant, room, mode=message.mode)
            await room.broadcast({"type": "room_mode", "mode": message.mode})
            await room.refresh_subscriptions()
            return
        target = room.participants.get(message.participant_id or "")
        if target is None:
            raise ProtocolError("unknown_participant", f"no participant {message.participant_id!r}")
        on_target: dict[str, Detail] = {"target": target.id, "target_name": target.name}
        if message.action == "promote":
            await room.promote(target)
            self._record("chair.promote", participant, room, **on_target)
            return
        if message.action == "demote":
            await room.demote(target)
            self._record("chair.demote", participant, room, **on_target)
            return
        if message.action == "mute":
            if message.source is None:
                raise ProtocolError("bad_message", "mute needs a source")
            await room.set_muted(target, message.source, True, "chair")
            self._record("chair.mute", participant, room, source=message.source, **on_target)
        else:
            self._record("chair.remove", participant, room, **on_target)
            with contextlib.suppress(Exception):
                await target.send({"type": "removed", "reason": f"removed by {participant.name}"})
            await room.remove(target, "removed")

    def _on_detached_by_room(self) -> None:
        # The room kept the participant but took it from this socket (its media connection
        # failed, or its client resumed over another socket): close it so the client resumes.
        participant, room = self.participant, self.room
        self.participant = None
        if participant is not None and room is not None:
            participant.on_removed = self._leave_recorder(participant, room)
        self._closing = asyncio.ensure_future(self._close_detached())

    async def _close_detached(self) -> None:
        await self.ws.close(message=b"reconnect")

    def _leave_recorder(self, participant: Participant, room: Room) -> Callable[[], None]:
        """What an away participant's removal does (its grace period passed): the audit trail
        hears that it left, and the room is forgotten if it was the last one."""

        def left() -> None:
            self._record("room.left", participant, room, reason="disconnected")
            self.services.rooms.discard_if_empty(room)

        return left

    def _on_removed_by_room(self) -> None:
        self._closing = asyncio.ensure_future(self._closed_by_room())

    async def _closed_by_room(self) -> None:
        # The room removed us (chair, room ended, connection failed): close the socket once
        # the reason has gone out.
        if self.participant is not None and self.room is not None:
            self._record("room.left", self.participant, self.room, reason="removed")
        self.participant = None
        await self.flush()
        await self.ws.close()

    async def _leave(self, reason: str) -> None:
        participant, room = self.participant, self.room
        self.participant = None
        if participant is not None and room is not None:
            participant.on_removed = participant.on_detached = None
            if reason != "left":
                # Gone without a leave: kept for its client to resume, when the room allows.
                participant.on_removed = self._leave_recorder(participant, room)
                if await room.reconnects.suspend(participant):
                    return
                participant.on_removed = None
            await room.remove(participant, "left" if reason == "left" else "disconnected")
            self._record("room.left", participant, room, reason=reason)
            self.services.rooms.discard_if_empty(room)


def _reply(message: dict[str, Any], request_id: int | str | None) -> dict[str, Any]:
    if request_id is not None:
        message["id"] = request_id
    return message


def _type_of(text: str) -> str:
    return text[:40].replace("\n", " ")


def _join_within(request: web.Request, services: SignalingServices) -> float:
    own = services.sockets.join_timeout
    if not services.behind_front:
        return own
    try:
        left = float(request.headers.get(JOIN_WITHIN_HEADER, "nan"))
    except ValueError:
        return own
    # The front started the client's deadline when it accepted the socket; the grace lets a
    # join the front received just in time reach this process and be read.
    return min(own, max(0.0, left) + FORWARDED_JOIN_GRACE) if math.isfinite(left) else own


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    """``GET /ws``: one signalling session."""
    services = request.app[SIGNALING]
    address = request.remote or "unknown"
    refusal = refuse_websocket(services.sockets, address)
    if refusal is not None:
        return refusal
    try:
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=HARD_FRAME_LIMIT)
        await ws.prepare(request)
        connection = ClientConnection(ws, address, services)
        try:
            await connection.run(_join_within(request, services))
        finally:
            await connection.stop_writer()
        return ws
    finally:
        services.sockets.release(address)
