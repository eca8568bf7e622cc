"""The on-demand library over HTTP: a staff API under ``/api/library`` and playback under
``/library``, mounted by :func:`setup_library`.

Staff (the admin bearer token, or a staff or admin access token from the hospital's platform,
scoped to its department: :mod:`mcu.library.staff`) search, describe, upload, delete and share
items; a share link
(a signed, expiring token for one item) lets anyone holding it play that item. This module holds
the routes' shared conventions (the admin token, every failure as a JSON error) and the item
routes; uploads, playback and share links have modules of their own. docs/library.md is the
reference.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from aiohttp import web

from mcu.crypto.accesstokens import AccessTokens
from mcu.crypto.tokens import ShareSigner
from mcu.infra.auditlog import AuditTrail
from mcu.infra.httpapi import ApiError, error_response
from mcu.library.items import LibraryItems, actor_of, item_json
from mcu.library.page import setup_library_page
from mcu.library.params import Body, Label, Tags, Title, parse_body
from mcu.library.playback import Playback
from mcu.library.search import parse_search
from mcu.library.shares import PlaybackAccess, ShareLinks
from mcu.library.staff import Revoked, StaffAccess, may_label, request_access
from mcu.library.uploads import MAX_UPLOAD_BYTES, Uploads
from mcu.recorder.catalogue import UNSET, Catalogue

__all__ = ["MASTER_KEY_NAME", "UpdateItem", "setup_library"]

log = logging.getLogger(__name__)

MASTER_KEY_NAME: Final = "library-master-key"
"""Suggested ``load_or_create_secret`` name of the key that wraps every file's data key."""

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class UpdateItem(Body):
    """``PATCH /api/library/{id}``; only fields present change, null clears department or
    lecturer."""

    title: Title | None = None
    department: Label | None = None
    lecturer: Label | None = None
    tags: Tags | None = None


class _Conventions:
    """What every library route shares: staff credentials, and every failure as a JSON
    error."""

    def __init__(self, staff: StaffAccess, audit: AuditTrail | None) -> None:
        self.staff = staff
        self._audit = audit

    async def _guard(
        self, request: web.Request, handler: _Handler, *, staff: bool
    ) -> web.StreamResponse:
        response: web.StreamResponse
        try:
            if staff:
                try:
                    await self.staff.admit(request)
                except ApiError as exc:
                    log.info(
                        "library: refused %s %s from %s (%s)",
                        request.method,
                        request.path,
                        request.remote,
                        exc.error,
                    )
                    if self._audit is not None:
                        self._audit.record(
                            "admin.refused",
                            actor="anonymous",
                            address=request.remote,
                            details={"method": request.method, "path": request.path},
                        )
                    raise
            response = await handler(request)
        except ApiError as exc:
            response = error_response(exc.status, exc.error, exc.message, exc.headers)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = exc.reason.lower().replace(" ", "_")
            response = error_response(exc.status, code, exc.reason)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("library %s %s failed", request.method, request.path)
            response = error_response(500, "internal_error", "see the server log")
        if not response.prepared:
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @web.middleware
    async def staff_middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Admin token on every request; every failure as a JSON error."""
        return await self._guard(request, handler, staff=True)

    @web.middleware
    async def playback_middleware(
        self, request: web.Request, handler: _Handler
    ) -> web.StreamResponse:
        """Every failure as a JSON error (handlers check access per item)."""
        return await self._guard(request, handler, staff=False)


class _ItemRoutes:
    """The staff API's routes over existing items: search, describe, edit, delete."""

    def __init__(self, items: LibraryItems) -> None:
        self._items = items

    async def list_items(self, request: web.Request) -> web.Response:
        """``GET /api/library``."""
        search = parse_search(request.query.items())
        access = request_access(request)
        page = await self._items.catalogue.query(
            scope=UNSET if access.role == "admin" else access.department,
            text=search.text,
            department=search.department,
            recorded_from=search.recorded_from,
            recorded_to=search.recorded_to,
            limit=search.limit,
            offset=search.offset,
        )
        return web.json_response(
            {"items": [item_json(item) for item in page.items], "total": page.total}
        )

    async def get_item(self, request: web.Request) -> web.Response:
        """``GET /api/library/{id}``."""
        item = await self._items.seen_by(request.match_info["id"], request_access(request))
        return web.json_response(item_json(item))

    async def update_item(self, request: web.Request) -> web.Response:
        """``PATCH /api/library/{id}``."""
        item_id = request.match_info["id"]
        access = request_access(request)
        await self._items.seen_by(item_id, access)
        body = await parse_body(request, UpdateItem)
        given = body.model_fields_set
        if "department" in given and not may_label(access, body.department):
            raise ApiError(403, "forbidden", "staff file items under their own department only")
        for name in ("title", "tags"):
            if name in given and getattr(body, name) is None:
                raise ApiError(400, "bad_request", f"{name} cannot be null")
        item = await self._items.catalogue.update_metadata(
            item_id,
            **{name: getattr(body, name) for name in given},
        )
        if item is None:
            raise ApiError(404, "not_found", f"no library item {item_id!r}")
        log.info("library: %s updated (%s)", item_id, ", ".join(sorted(given)) or "nothing")
        self._items.record(
            request,
            "library.updated",
            item_id,
            actor_of(request_access(request)),
            fields=",".join(sorted(given)),
        )
        return web.json_response(item_json(item))

    async def delete_item(self, request: web.Request) -> web.Response:
        """``DELETE /api/library/{id}``: the files, then the entry."""
        item = await self._items.seen_by(request.match_info["id"], request_access(request))
        if item.status == "recording":
            raise ApiError(409, "recording", "the item is still being recorded")
        paths = [self._items.on_disk(file) for file in item.files]
        await asyncio.get_running_loop().run_in_executor(None, self._remove_files, paths)
        await self._items.catalogue.delete(item.id)
        log.info("library: %s deleted", item.id)
        self._items.record(request, "library.deleted", item.id, actor_of(request_access(request)))
        return web.Response(status=204)

    def _remove_files(self, paths: list[Path]) -> None:
        data_dir = self._items.data_dir
        for path in paths:
            path.unlink(missing_ok=True)
        for parent in {path.parent for path in paths}:
            if parent != data_dir and parent.is_relative_to(data_dir):
                try:
                    parent.rmdir()  # only when empty
                except OSError:
                    pass


def setup_library(
    app: web.Application,
    *,
    catalogue: Catalogue,
    data_dir: Path,
    master_key: bytes,
    admin_token: str,
    signer: ShareSigner,
    encrypt_uploads: bool = True,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    tokens: AccessTokens | None = None,
    revoked: Revoked | None = None,
    audit: AuditTrail | None = None,
) -> None:
    """Mount the staff API at ``/api/library``, the staff page at ``/library`` and playback at
    ``/library/{id}/...`` on ``app``.

    ``master_key`` (32 bytes, e.g. ``load_or_create_secret(data_dir, MASTER_KEY_NAME)``) wraps
    every file's data key; ``signer`` signs share links; ``encrypt_uploads`` seals uploaded
    courseware at rest (then a request cannot opt out); ``tokens`` verifies staff's access
    tokens and ``revoked`` consults the deny list; ``audit`` records uploads, plays,
    downloads, share links made and used, edits, deletions and refused credentials. The
    catalogue's lifetime belongs to the caller.
    """
    if len(admin_token) < 16:
        raise ValueError("admin token must be at least 16 characters")
    if len(master_key) != 32:
        raise ValueError("master key must be 32 bytes")
    conventions = _Conventions(
        StaffAccess(admin_token, tokens or AccessTokens(), revoked or _nothing_revoked), audit
    )
    items = LibraryItems(catalogue, data_dir, audit)
    routes = _ItemRoutes(items)
    uploads = Uploads(items, master_key, encrypt_uploads, max_upload_bytes)
    shares = ShareLinks(items, signer)
    playback = Playback(items, PlaybackAccess(signer, conventions.staff), master_key)

    staff = web.Application(middlewares=[conventions.staff_middleware])
    staff.router.add_get("", routes.list_items, allow_head=False)
    staff.router.add_post("", uploads.upload)
    staff.router.add_get("/{id}", routes.get_item, allow_head=False)
    staff.router.add_patch("/{id}", routes.update_item)
    staff.router.add_delete("/{id}", routes.delete_item)
    staff.router.add_post("/{id}/share", shares.share_item)
    app.add_subapp("/api/library", staff)
    player = web.Application(middlewares=[conventions.playback_middleware])
    player.router.add_get("/{id}/play", playback.play)
    player.router.add_get("/{id}/files/{name}", playback.file)
    setup_library_page(app)  # first: the sub-application would answer its paths
    app.add_subapp("/library", player)


async def _nothing_revoked(jti: str, now: float) -> bool:
    return False
