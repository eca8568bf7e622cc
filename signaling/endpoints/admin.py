"""The REST admin API under ``/api``: define rooms, issue invite links, end live rooms, revoke
the platform's access tokens.

Every request needs ``Authorization: Bearer <admin token>``, or an access token with the role
``admin``. Bodies and replies are JSON;
errors are ``{"error": code, "message": text}``. docs/api.md is the reference.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, Protocol, TypeVar

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from mcu.contracts.cluster import MAX_ROOM_ID_CHARS, ROOM_ID_PATTERN
from mcu.crypto.accesstokens import AccessTokens, ApiRefused, api_access
from mcu.crypto.passwords import hash_password, verify_password
from mcu.crypto.tokens import InviteSigner, Role
from mcu.infra.auditlog import AuditTrail, Detail
from mcu.infra.httpapi import (
    ApiError,
    Moment,
    bearer_token,
    describe_validation_error,
    error_response,
    read_body,
    store_unavailable_response,
)
from mcu.signaling.endpoints.audit import setup_audit_api
from mcu.signaling.endpoints.clusternodes import ClusterNodes, cluster_nodes_handler
from mcu.signaling.rooms.errors import RoomError
from mcu.signaling.rooms.records import RoomRecords
from mcu.signaling.rooms.store import (
    UNSET,
    RoomExists,
    RoomKind,
    RoomRecord,
    StoreUnavailable,
    Unset,
)

__all__ = ["MAX_BODY_BYTES", "LiveCounts", "LiveRooms", "setup_admin_api"]

log = logging.getLogger(__name__)

_ACTOR = web.RequestKey("admin_actor", str)
"Who an admin API request is, for the audit trail: the platform user's id, or ``admin``."

_M = TypeVar("_M", bound=BaseModel)

MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted; larger ones get 413."""

RoomId = Annotated[str, StringConstraints(pattern=ROOM_ID_PATTERN)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
Capacity = Annotated[int, Field(ge=1, le=1000)]
TtlSeconds = Annotated[int, Field(ge=60, le=2_592_000)]


class LiveRooms(Protocol):
    """What the admin API needs from the rooms currently in session."""

    def participant_count(self, room_id: str) -> int:
        """How many participants are in the room now (0 if it is not live)."""
        ...

    def retitle(self, room_id: str, title: str) -> None:
        """A live room's new title (newcomers and new recordings get it); a no-op for a room
        that is not live."""
        ...

    async def end_room(self, room_id: str, reason: str) -> None:
        """Send everyone in the room ``room_ended`` with ``reason`` and disconnect them; a no-op
        for a room that is not live."""
        ...

    async def set_recording(self, room_id: str, active: bool) -> dict[str, Any] | None:
        """Start or stop recording a live room; None when the room is not live. Raises a
        ``RoomError`` the room refuses with (an end-to-end encrypted room, ``e2ee_room``)."""
        ...


class LiveCounts(Protocol):
    """People in the live rooms of every node of a cluster (the listing's ``participants``)."""

    async def participants(self) -> Mapping[str, int]:
        """People seen and heard in each live room, summed over the nodes; a room that is not
        live anywhere may be left out."""
        ...


class _Body(BaseModel):
    # Strict: "8" is not a capacity; JSON-mode strict still accepts ISO-8601 strings as times.
    model_config = ConfigDict(extra="forbid", strict=True)


class CreateRoom(_Body):
    """``POST /api/rooms``."""

    id: RoomId
    title: Title
    password: Password
    opens_at: Moment | None = None
    closes_at: Moment | None = None
    max_participants: Capacity | None = None
    auto_record: bool = False
    kind: RoomKind = "meeting"
    viewer_password: Password | None = None
    e2ee: bool = False

    @model_validator(mode="after")
    def _window(self) -> CreateRoom:
        _check_window(_timestamp(self.opens_at), _timestamp(self.closes_at))
        if self.e2ee and self.auto_record:
            raise ValueError(_E2EE_NOT_RECORDED)
        if self.viewer_password is not None and self.kind != "lecture":
            raise ValueError("viewer_password: only lecture rooms have viewers")
        if self.viewer_password is not None and self.viewer_password == self.password:
            raise ValueError("viewer_password must differ from password (it admits viewers only)")
        return self


class UpdateRoom(_Body):
    """``PATCH /api/rooms/{id}``; only fields present change, null clears an optional one."""

    title: Title | None = None
    password: Password | None = None
    opens_at: Moment | None = None
    closes_at: Moment | None = None
    max_participants: Capacity | None = None
    auto_record: bool | None = None
    kind: RoomKind | None = None
    viewer_password: Password | None = None
    e2ee: bool | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> UpdateRoom:
        for name in ("title", "password", "auto_record", "kind", "e2ee"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


_E2EE_NOT_RECORDED = (
    "auto_record: an end-to-end encrypted room cannot be recorded (the server cannot read it)"
)


def _check_e2ee(current: RoomRecord, body: UpdateRoom, participants: int) -> None:
    """``e2ee`` changes only while nobody is in the room (the participants' pages hold, or do
    not hold, a key: switching under them would leave them sending what the others cannot
    read), and never ends up beside ``auto_record``."""
    e2ee = body.e2ee if body.e2ee is not None else current.e2ee
    if e2ee != current.e2ee and participants:
        raise ApiError(
            409,
            "room_in_use",
            "e2ee can be changed only while nobody is in the room; end the session first",
        )
    auto_record = body.auto_record if body.auto_record is not None else current.auto_record
    if e2ee and auto_record:
        raise ApiError(400, "bad_request", _E2EE_NOT_RECORDED)


class RevokeToken(_Body):
    """``POST /api/revoked-tokens``."""

    jti: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    expires_at: Moment
    "When the token itself expires: the entry is kept until then."


class CreateInvite(_Body):
    """``POST /api/rooms/{id}/invites``."""

    role: Role = "participant"
    ttl_seconds: TtlSeconds = 86_400


async def _check_viewer_password(current: RoomRecord, body: UpdateRoom) -> None:
    """The rules creation enforces, on the room as the change would leave it: a viewer password
    only on a lecture, and never equal to the room password (viewers would join as lecturers)."""
    given = body.model_fields_set
    kind = body.kind if body.kind is not None else current.kind
    has_viewer_password = (
        body.viewer_password is not None
        if "viewer_password" in given
        else current.viewer_password_hash is not None
    )
    if has_viewer_password and kind != "lecture":
        raise ApiError(
            400,
            "bad_request",
            "viewer_password: only lecture rooms have viewers (clear it to make a meeting)",
        )
    same = "viewer_password must differ from password (it admits viewers only)"
    if body.password is not None and body.viewer_password is not None:
        if body.password == body.viewer_password:
            raise ApiError(400, "bad_request", same)
    elif body.viewer_password is not None:
        if await verify_password(current.password_hash, body.viewer_password):
            raise ApiError(400, "bad_request", same)
    elif body.password is not None and "viewer_password" not in given:
        stored = current.viewer_password_hash
        if stored is not None and await verify_password(stored, body.password):
            raise ApiError(400, "bad_request", same)


def _check_window(opens_at: float | None, closes_at: float | None) -> None:
    if opens_at is not None and closes_at is not None and closes_at <= opens_at:
        raise ValueError("closes_at must be later than opens_at")


def _timestamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _bad_request(exc: ValidationError) -> NoReturn:
    first = exc.errors()[0]
    if first["type"] == "string_pattern_mismatch" and first["loc"] == ("id",):
        message = f"id: must be 1-{MAX_ROOM_ID_CHARS} characters from A-Z, a-z, 0-9, '_' and '-'"
    else:
        message = describe_validation_error(exc)
    raise ApiError(400, "bad_request", message)


async def _parse(request: web.Request, model: type[_M], *, empty_ok: bool = False) -> _M:
    body = await read_body(request, MAX_BODY_BYTES)
    if empty_ok and not body.strip():
        body = b"{}"
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        _bad_request(exc)


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _AdminApi:
    """Route handlers sharing the store, signer and live-room view."""

    def __init__(
        self,
        store: RoomRecords,
        signer: InviteSigner,
        admin_token: str,
        live: LiveRooms,
        audit: AuditTrail | None,
        tokens: AccessTokens,
        counts: LiveCounts | None,
    ) -> None:
        self.store, self.signer, self.live = store, signer, live
        self._counts = counts
        self._token = admin_token.encode("utf-8")
        self._audit = audit
        self._tokens = tokens

    def _record(
        self, request: web.Request, action: str, room: str | None, **details: Detail
    ) -> None:
        """Record an action done with the admin token or an admin's access token (never the
        token, nor a password)."""
        if self._audit is not None:
            actor = request.get(_ACTOR, "admin")
            self._audit.record(
                action, actor=actor, room=room, address=request.remote, details=details
            )

    @web.middleware
    async def middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Authenticate, then turn every failure into a JSON error."""
        refusal = await self._refusal(request)
        if refusal is not None:
            log.info(
                "admin API: refused %s %s from %s (%s)",
                request.method,
                request.path,
                request.remote,
                refusal.error,
            )
            if self._audit is not None:
                self._audit.record(
                    "admin.refused",
                    actor="anonymous",
                    address=request.remote,
                    details={"method": request.method, "path": request.path},
                )
            status = 403 if refusal.error == "role_not_allowed" else 401
            refused = error_response(status, refusal.error, refusal.message)
            if status == 401:
                refused.headers["WWW-Authenticate"] = 'Bearer realm="mcu-admin"'
            return refused
        response: web.StreamResponse
        try:
            response = await handler(request)
        except ApiError as exc:
            response = error_response(exc.status, exc.error, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = exc.reason.lower().replace(" ", "_")
            response = error_response(exc.status, code, exc.reason)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
        except StoreUnavailable as exc:
            # A cluster's Redis away or failing over: expected, brief, and worth a retry.
            log.warning("admin API %s %s: %s", request.method, request.path, exc)
            response = store_unavailable_response()
        except Exception:
            log.exception("admin API %s %s failed", request.method, request.path)
            response = error_response(500, "internal_error", "see the server log")
        # Replies can carry invite tokens.
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _refusal(self, request: web.Request) -> ApiError | None:
        """Why the request may not use the API (None: it may): the admin token, or an admin's
        access token that is not on the deny list."""
        now = time.time()
        try:
            access = api_access(
                bearer_token(request), self._token, self._tokens, now, frozenset({"admin"})
            )
        except ApiRefused as exc:
            return ApiError(401, exc.code, exc.message)
        if access.jti is not None and await self.store.token_revoked(access.jti, now):
            return ApiError(401, "bad_token", "the access token has been revoked")
        request[_ACTOR] = access.subject or "admin"
        return None

    async def _existing(self, room_id: str) -> RoomRecord:
        record = await self.store.get(room_id)
        if record is None:
            raise ApiError(404, "not_found", f"no room {room_id!r}")
        return record

    async def _participants(self) -> Mapping[str, int] | None:
        """Cluster-wide live counts, or None on a single node (this process's count is it)."""
        return None if self._counts is None else await self._counts.participants()

    def _room_json(
        self, record: RoomRecord, participants: Mapping[str, int] | None = None
    ) -> dict[str, Any]:
        count = (
            self.live.participant_count(record.id)
            if participants is None
            else participants.get(record.id, 0)
        )
        return {
            "id": record.id,
            "title": record.title,
            "created_at": _iso(record.created_at),
            "opens_at": _iso(record.opens_at),
            "closes_at": _iso(record.closes_at),
            "max_participants": record.max_participants,
            "auto_record": record.auto_record,
            "kind": record.kind,
            "viewer_password": record.viewer_password_hash is not None,
            "e2ee": record.e2ee,
            "participants": count,
        }

    async def create_room(self, request: web.Request) -> web.Response:
        """``POST /api/rooms``."""
        body = await _parse(request, CreateRoom)
        if await self.store.get(body.id) is not None:
            raise ApiError(409, "room_exists", f"room {body.id!r} already exists")
        record = RoomRecord(
            id=body.id,
            title=body.title,
            password_hash=await hash_password(body.password),
            created_at=time.time(),
            opens_at=_timestamp(body.opens_at),
            closes_at=_timestamp(body.closes_at),
            max_participants=body.max_participants,
            auto_record=body.auto_record,
            kind=body.kind,
            viewer_password_hash=(
                await hash_password(body.viewer_password)
                if body.viewer_password is not None
                else None
            ),
            e2ee=body.e2ee,
        )
        try:
            await self.store.create(record)
        except RoomExists:
            # Another request created it while the password was hashing.
            raise ApiError(409, "room_exists", f"room {body.id!r} already exists") from None
        log.info("room %s created", record.id)
        self._record(request, "room.created", record.id, kind=record.kind)
        return web.json_response(self._room_json(record), status=201)

    async def list_rooms(self, request: web.Request) -> web.Response:
        """``GET /api/rooms``."""
        records = await self.store.list()
        counts = await self._participants()
        return web.json_response({"rooms": [self._room_json(r, counts) for r in records]})

    async def get_room(self, request: web.Request) -> web.Response:
        """``GET /api/rooms/{id}``."""
        record = await self._existing(request.match_info["id"])
        return web.json_response(self._room_json(record, await self._participants()))

    async def update_room(self, request: web.Request) -> web.Response:
        """``PATCH /api/rooms/{id}``."""
        room_id = request.match_info["id"]
        current = await self._existing(room_id)
        body = await _parse(request, UpdateRoom)
        given = body.model_fields_set
        opens_at: float | Unset | None = UNSET
        closes_at: float | Unset | None = UNSET
        if "opens_at" in given:
            opens_at = _timestamp(body.opens_at)
        if "closes_at" in given:
            closes_at = _timestamp(body.closes_at)
        try:
            _check_window(
                current.opens_at if opens_at is UNSET else opens_at,
                current.closes_at if closes_at is UNSET else closes_at,
            )
        except ValueError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        await _check_viewer_password(current, body)
        _check_e2ee(current, body, self.live.participant_count(room_id))
        record = await self.store.update(
            room_id,
            title=body.title if body.title is not None else UNSET,
            password_hash=(
                await hash_password(body.password) if body.password is not None else UNSET
            ),
            opens_at=opens_at,
            closes_at=closes_at,
            max_participants=body.max_participants if "max_participants" in given else UNSET,
            auto_record=body.auto_record if body.auto_record is not None else UNSET,
            kind=body.kind if body.kind is not None else UNSET,
            viewer_password_hash=(
                UNSET
                if "viewer_password" not in given
                else None
                if body.viewer_password is None
                else await hash_password(body.viewer_password)
            ),
            e2ee=body.e2ee if body.e2ee is not None else UNSET,
        )
        if record is None:
            raise ApiError(404, "not_found", f"no room {room_id!r}")
        if body.title is not None:
            self.live.retitle(room_id, record.title)
        log.info("room %s updated (%s)", room_id, ", ".join(sorted(given)) or "nothing")
        # The names of the fields changed, never their values (passwords are among them).
        self._record(request, "room.updated", room_id, fields=",".join(sorted(given)))
        return web.json_response(self._room_json(record, await self._participants()))

    async def delete_room(self, request: web.Request) -> web.Response:
        """``DELETE /api/rooms/{id}``: end the live session, then forget the room."""
        room_id = request.match_info["id"]
        await self._existing(room_id)
        await self.live.end_room(room_id, "deleted")
        await self.store.delete(room_id)
        if self.live.participant_count(room_id):
            # Someone joined between ending the session and deleting the record.
            await self.live.end_room(room_id, "deleted")
        log.info("room %s deleted", room_id)
        self._record(request, "room.deleted", room_id)
        return web.Response(status=204)

    async def set_recording(self, request: web.Request) -> web.Response:
        """``POST /api/rooms/{id}/recording``: start or stop recording a live room."""
        record = await self._existing(request.match_info["id"])
        body = await _parse(request, RecordingBody)
        try:
            state = await self.live.set_recording(record.id, body.active)
        except RoomError as exc:  # an end-to-end encrypted room is never recorded
            raise ApiError(409, exc.code, exc.message) from None
        if state is None:
            return web.json_response(
                {
                    "error": "not_live",
                    "message": "nobody is in the room; recording starts with a session",
                },
                status=409,
            )
        action = "recording.started" if body.active else "recording.stopped"
        self._record(request, action, record.id)
        return web.json_response(state)

    async def revoke_token(self, request: web.Request) -> web.Response:
        """``POST /api/revoked-tokens``: put an access token's ``jti`` on the deny list until
        the token expires."""
        body = await _parse(request, RevokeToken)
        expires_at = body.expires_at.timestamp()
        await self.store.revoke_token(body.jti, expires_at, now=time.time())
        log.info("admin API: access token %s revoked", body.jti)
        return web.json_response({"jti": body.jti, "expires_at": _iso(expires_at)}, status=201)

    async def create_invite(self, request: web.Request) -> web.Response:
        """``POST /api/rooms/{id}/invites``."""
        record = await self._existing(request.match_info["id"])
        body = await _parse(request, CreateInvite, empty_ok=True)
        now = time.time()
        token = self.signer.issue(record.id, body.role, body.ttl_seconds, now=now)
        log.info("invite issued for room %s (%s, %d s)", record.id, body.role, body.ttl_seconds)
        self._record(
            request, "invite.created", record.id, role=body.role, ttl_seconds=body.ttl_seconds
        )
        payload = {
            "token": token,
            # A viewer's link opens the audience page (no camera, the stage over WHEP).
            "url": f"/r/{record.id}?{'view&' if body.role == 'viewer' else ''}invite={token}",
            "role": body.role,
            "expires_at": _iso(now + body.ttl_seconds),
        }
        if body.role == "viewer":
            # A WHEP player watches with the token as its bearer token; in a meeting the
            # participants see it (by its ?name=).
            payload["whep"] = f"/whep/{record.id}"
        return web.json_response(payload, status=201)


class RecordingBody(_Body):
    """Body of ``POST /api/rooms/{id}/recording``."""

    active: bool


def setup_admin_api(
    app: web.Application,
    *,
    store: RoomRecords,
    signer: InviteSigner,
    admin_token: str,
    live: LiveRooms,
    audit: AuditTrail | None = None,
    audit_dir: Path | None = None,
    tokens: AccessTokens | None = None,
    counts: LiveCounts | None = None,
    cluster_nodes: ClusterNodes | None = None,
) -> web.Application:
    """Mount the admin API on ``app`` under ``/api`` (as a sub-application with its own auth).

    Returns the sub-application, already mounted: aiohttp freezes its router, so routes that
    need the same authentication are added here (as ``GET /api/audit`` is), not by the caller.
    ``audit`` records what is done with the token, and refused tokens; with ``audit_dir`` (where
    the trail is kept) ``GET /api/audit`` searches it. ``counts`` (a cluster's nodes together)
    gives the live ``participants`` of rooms; without it they are this process's.
    ``cluster_nodes`` (a node of a cluster) serves ``GET /api/cluster/nodes``.
    """
    if len(admin_token) < 16:
        raise ValueError("admin token must be at least 16 characters")
    api = _AdminApi(store, signer, admin_token, live, audit, tokens or AccessTokens(), counts)
    sub = web.Application(middlewares=[api.middleware])
    sub.router.add_post("/rooms", api.create_room)
    sub.router.add_get("/rooms", api.list_rooms, allow_head=False)
    sub.router.add_get("/rooms/{id}", api.get_room, allow_head=False)
    sub.router.add_patch("/rooms/{id}", api.update_room)
    sub.router.add_delete("/rooms/{id}", api.delete_room)
    sub.router.add_post("/rooms/{id}/invites", api.create_invite)
    sub.router.add_post("/rooms/{id}/recording", api.set_recording)
    if audit is not None and audit_dir is not None:
        setup_audit_api(sub, audit_dir=audit_dir, audit=audit)
    sub.router.add_post("/revoked-tokens", api.revoke_token)
    sub.router.add_get("/cluster/nodes", cluster_nodes_handler(cluster_nodes), allow_head=False)
    app.add_subapp("/api", sub)
    return sub
