"""Share links: staff hand out an expiring link to one item (``POST /api/library/{id}/share``),
and playback admits its holder. The token itself is signed and checked by
:class:`mcu.crypto.tokens.ShareSigner`; this module is its HTTP side."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Annotated, Final

from aiohttp import web
from pydantic import Field

from mcu.crypto.accesstokens import ApiAccess
from mcu.crypto.tokens import InvalidShare, ShareSigner
from mcu.infra.httpapi import ApiError, bearer_token
from mcu.library.items import LibraryItems, actor_of, iso
from mcu.library.params import Body, parse_body
from mcu.library.staff import StaffAccess, request_access

__all__ = ["SHARE_KEY_NAME", "CreateShare", "PlaybackAccess", "ShareLinks", "link_fingerprint"]

log = logging.getLogger(__name__)

SHARE_KEY_NAME: Final = "library-share-key"
"""Suggested ``load_or_create_secret`` name of the key that signs share links."""

TtlSeconds = Annotated[int, Field(ge=60, le=2_592_000)]


def link_fingerprint(token: str) -> str:
    """A share link's name on the audit trail: enough of its SHA-256 to tell links apart and
    match a link's use to its making, and nothing that plays the item."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class CreateShare(Body):
    """``POST /api/library/{id}/share``."""

    ttl_seconds: TtlSeconds = 86_400


class ShareLinks:
    """The route that hands out share links."""

    def __init__(self, items: LibraryItems, signer: ShareSigner) -> None:
        self._items, self._signer = items, signer

    async def share_item(self, request: web.Request) -> web.Response:
        """``POST /api/library/{id}/share``."""
        item = await self._items.seen_by(request.match_info["id"], request_access(request))
        body = await parse_body(request, CreateShare, empty_ok=True)
        now = time.time()
        token = self._signer.issue(item.id, body.ttl_seconds, now=now)
        log.info("library: share link for %s (%d s)", item.id, body.ttl_seconds)
        self._items.record(
            request,
            "library.shared",
            item.id,
            actor_of(request_access(request)),
            link=link_fingerprint(token),
            ttl_seconds=body.ttl_seconds,
        )
        return web.json_response(
            {
                "token": token,
                "url": f"/library/{item.id}/play?token={token}",
                "expires_at": iso(now + body.ttl_seconds),
            },
            status=201,
        )


class PlaybackAccess:
    """Who may play an item: staff (the admin token, a staff or admin access token), or the
    holder of a share link for it."""

    def __init__(self, signer: ShareSigner, staff: StaffAccess) -> None:
        self._signer, self._staff = signer, staff

    async def check(self, request: web.Request, item_id: str) -> ApiAccess | None:
        """Who plays ``item_id``: the staff member (whose scope the caller checks), or None for
        a share link's holder; ApiError 400, 401 or 403 when nobody may."""
        if bearer_token(request) is not None:
            try:
                return await self._staff.identify(request)
            except ApiError:
                if "token" not in request.query:
                    raise
        tokens = request.query.getall("token", [])
        if len(tokens) > 1:
            raise ApiError(400, "bad_request", "a query parameter is repeated")
        token = tokens[0] if tokens else None
        if token is None:
            raise ApiError(
                401,
                "unauthorized",
                "send a share link's token, or Authorization: Bearer <admin token>",
            )
        try:
            self._signer.verify(token, item_id)
            return None
        except InvalidShare as exc:
            if exc.reason == "wrong_item":
                raise ApiError(403, "forbidden", "the share link is for another item") from None
            raise ApiError(
                401, "unauthorized", "the share link is invalid or has expired"
            ) from None
