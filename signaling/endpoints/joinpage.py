"""The join page's server side: ``/r/{room}`` serves the browser client, and two public routes
tell that page what anyone holding the link may know before joining.

- ``GET /rooms/{room}``: the room's title and kind (never passwords, times or head counts).
- ``GET /rooms/{room}/invite`` with ``Authorization: Bearer <invite>``: the same, with the role
  the invitation grants and until when, or why it cannot be used (expired, another room, ...).

Unknown rooms count as failed attempts in the same per-address throttle as wrong passwords, so
these routes are no faster way to probe room ids than joining.
The page's form never submits natively; should a browser submit it anyway (an old cached page),
a room password in the query is redirected away rather than served back, and a form ``POST``
comes back as the page. docs/api.md ("Public room information") is the reference.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote_plus

from aiohttp import web

from mcu.contracts.cluster import MAX_ROOM_ID_CHARS
from mcu.crypto.tokens import InvalidInvite, InviteSigner
from mcu.infra.httpapi import ApiError, error_response
from mcu.signaling.rooms.admission import Refused
from mcu.signaling.rooms.entrance import unknown_room
from mcu.signaling.rooms.records import RoomRecords
from mcu.signaling.rooms.store import RoomRecord
from mcu.signaling.rooms.throttle import LoginThrottle

__all__ = ["INVITE_REFUSALS", "SECRET_QUERY_FIELDS", "setup_join_page"]

logger = logging.getLogger(__name__)

SECRET_QUERY_FIELDS = frozenset({"password"})
"""Query fields never served back: what a native submission of the join form would add."""

MAX_INVITE_CHARS = 4096
"""Issued invites are a few hundred characters; longer bearer values are not looked at."""

INVITE_REFUSALS: dict[str, tuple[str, str]] = {
    "bad_signature": ("invalid", "this is not a valid invitation"),
    "malformed": ("invalid", "this is not a valid invitation"),
    "wrong_room": ("wrong_room", "this invitation is for another room"),
    "expired": ("expired", "this invitation has expired"),
    "revoked": ("revoked", "this invitation was for an earlier room with this id"),
}
""":class:`InvalidInvite` reasons -> (``reason`` in the reply, ``message``)."""

_NO_STORE = {"Cache-Control": "no-store"}


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(round(timestamp), UTC)
    return moment.isoformat().replace("+00:00", "Z")


def _without_secrets(raw_query: str) -> tuple[str, bool]:
    """``raw_query`` without its secret fields, kept byte for byte otherwise (``?view`` stays
    ``?view``), and whether anything was taken out."""
    kept = []
    removed = False
    for part in raw_query.split("&"):
        name = unquote_plus(part.partition("=")[0]).strip().lower()
        if name in SECRET_QUERY_FIELDS:
            removed = True
        elif part:
            kept.append(part)
    return "&".join(kept), removed


def _page_url(request: web.Request, query: str) -> str:
    return request.rel_url.raw_path + (f"?{query}" if query else "")


class _JoinPage:
    """Route handlers sharing the page file, the room store, the invite signer and the throttle."""

    def __init__(
        self, page: Path, store: RoomRecords, signer: InviteSigner, throttle: LoginThrottle
    ) -> None:
        self.page, self.store, self.signer, self.throttle = page, store, signer, throttle

    async def get_page(self, request: web.Request) -> web.StreamResponse:
        """``GET /r/{room}``: the browser client; a query carrying a password is redirected to
        the same address without it (the redirect, not the page, is what history keeps)."""
        query, removed = _without_secrets(request.rel_url.raw_query_string)
        if removed:
            logger.info("room page: password taken out of the address of %s", request.path)
            return self._back_to_page(request, query)
        return web.FileResponse(self.page, headers={"Cache-Control": "no-cache"})

    async def post_page(self, request: web.Request) -> web.StreamResponse:
        """``POST /r/{room}``: a join form submitted without the page's scripts. Its body (the
        password) is not read; the person gets the page again, invitation and all."""
        query, _ = _without_secrets(request.rel_url.raw_query_string)
        return self._back_to_page(request, query)

    def _back_to_page(self, request: web.Request, query: str) -> web.Response:
        return web.Response(
            status=303,
            headers={
                "Location": _page_url(request, query),
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
            },
        )

    async def room_info(self, request: web.Request) -> web.Response:
        """``GET /rooms/{room}``: what the join page shows before anyone has a password."""
        try:
            record = await self._record(request)
        except ApiError as exc:
            return error_response(exc.status, exc.error, exc.message, exc.headers)
        return web.json_response(_public(record), headers=_NO_STORE)

    async def invite_info(self, request: web.Request) -> web.Response:
        """``GET /rooms/{room}/invite``: what the bearer invitation grants in this room."""
        try:
            return await self._invite_info(request)
        except ApiError as exc:
            return error_response(exc.status, exc.error, exc.message, exc.headers | _NO_STORE)

    async def _invite_info(self, request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(
                401,
                "unauthorized",
                "send Authorization: Bearer <invitation token>",
                {"WWW-Authenticate": 'Bearer realm="mcu"'},
            )
        record = await self._record(request)
        try:
            if len(token) > MAX_INVITE_CHARS:
                raise InvalidInvite("malformed")
            invite = self.signer.verify(token, record.id, room_created_at=record.created_at)
        except InvalidInvite as exc:
            # Not a failed attempt: signatures cannot be guessed, and the room's existence is
            # public by now; counting would lock out someone reloading an expired link.
            reason, message = INVITE_REFUSALS.get(exc.reason, INVITE_REFUSALS["malformed"])
            return _bad_invite(reason, message)
        body = {"room": _public(record), "role": invite.role, "expires_at": _iso(invite.expires_at)}
        return web.json_response(body, headers=_NO_STORE)

    async def _record(self, request: web.Request) -> RoomRecord:
        """The room of the path, refused with 429 while the address is locked out, and with
        404 (counted against the address) when there is no such room."""
        address = request.remote or "unknown"
        retry = self.throttle.address_retry_after(address, time.time())
        if retry is not None:
            raise _rate_limited(retry)
        room_id = request.match_info["room"]
        # Longer ids name no room: no lookup needed to say so.
        record = await self.store.get(room_id) if len(room_id) <= MAX_ROOM_ID_CHARS else None
        if record is None:
            try:
                await unknown_room(self.throttle, room_id, address)
            except Refused as exc:
                if exc.code == "rate_limited":
                    raise _rate_limited(exc.retry_after or 0) from None
                raise ApiError(404, "unknown_room", "there is no room with this id") from None
        return record


def _rate_limited(retry: float) -> ApiError:
    return ApiError(
        429, "rate_limited", "too many failed attempts", {"Retry-After": str(int(retry) + 1)}
    )


def _public(record: RoomRecord) -> dict[str, str | bool]:
    """What anyone with the link may know of a room: no passwords, times or head counts."""
    # ``e2ee``: the page must hold the room key (from its link's fragment, or a passphrase).
    return {"id": record.id, "title": record.title, "kind": record.kind, "e2ee": record.e2ee}


def _bad_invite(reason: str, message: str) -> web.Response:
    """403 ``bad_invite``; ``reason`` is what the page turns into words."""
    body = {"error": "bad_invite", "reason": reason, "message": message}
    return web.json_response(body, status=403, headers=_NO_STORE)


def setup_join_page(
    app: web.Application,
    *,
    page: Path,
    store: RoomRecords,
    signer: InviteSigner,
    throttle: LoginThrottle,
) -> None:
    """Add ``/r/{room}`` (serving ``page``), ``GET /rooms/{room}`` and
    ``GET /rooms/{room}/invite`` to ``app``."""
    handlers = _JoinPage(page, store, signer, throttle)
    app.router.add_get("/r/{room}", handlers.get_page)
    app.router.add_post("/r/{room}", handlers.post_page)
    app.router.add_get("/rooms/{room}", handlers.room_info)
    app.router.add_get("/rooms/{room}/invite", handlers.invite_info)
