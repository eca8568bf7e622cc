"""Library items as every route finds and shows them: looked up by id (404 otherwise), their files
located inside the data directory, and the item object of docs/library.md."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from mcu.crypto.accesstokens import ApiAccess
from mcu.infra.auditlog import AuditTrail, Detail
from mcu.infra.httpapi import ApiError
from mcu.library.staff import visible
from mcu.recorder.catalogue import ITEM_ID, Catalogue, LibraryFile, LibraryItem

__all__ = ["LibraryItems", "actor_of", "iso", "item_json"]

log = logging.getLogger(__name__)


def actor_of(access: ApiAccess) -> str:
    """Who a staff request is on the audit trail: the platform's user id, or ``admin`` for the
    admin token."""
    return access.subject or "admin"


class LibraryItems:
    """The catalogue's items, the data directory their files live in, and the audit trail
    every route records its item's plays, downloads, shares and changes on."""

    def __init__(
        self, catalogue: Catalogue, data_dir: Path, audit: AuditTrail | None = None
    ) -> None:
        self.catalogue = catalogue
        self.data_dir = data_dir.resolve()
        self.audit = audit

    def record(
        self, request: web.Request, action: str, item_id: str, actor: str, **details: Detail
    ) -> None:
        """Record ``actor``'s ``action`` on ``item_id`` (never a token: a share link's
        fingerprint at most)."""
        if self.audit is not None:
            self.audit.record(
                action, actor=actor, item=item_id, address=request.remote, details=details
            )

    async def existing(self, item_id: str) -> LibraryItem:
        """The item ``item_id``; ApiError 404 when there is none (or the id is malformed)."""
        item = await self.catalogue.get(item_id) if ITEM_ID.fullmatch(item_id) else None
        if item is None:
            raise ApiError(404, "not_found", f"no library item {item_id!r}")
        return item

    async def seen_by(self, item_id: str, access: ApiAccess) -> LibraryItem:
        """The item ``item_id`` if ``access`` may see it; ApiError 404 otherwise (an item of
        another department is not shown to exist)."""
        item = await self.existing(item_id)
        if not visible(access, item):
            raise ApiError(404, "not_found", f"no library item {item_id!r}")
        return item

    def on_disk(self, file: LibraryFile) -> Path:
        """Where ``file`` is; ApiError 404 if its path would lead out of the data directory."""
        path = (self.data_dir / file.path).resolve()
        if not path.is_relative_to(self.data_dir):
            # The catalogue is ours, but a path must never lead out of the data directory.
            log.error("library: file %s points outside the data directory", file.name)
            raise ApiError(404, "not_found", f"file {file.name!r} is not available")
        return path


def iso(timestamp: float) -> str:
    """A Unix time as the API writes times: UTC ISO-8601 with ``Z``."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def item_json(item: LibraryItem) -> dict[str, Any]:
    """The item object the staff API answers with (docs/library.md)."""
    base = f"/library/{item.id}"
    return {
        "id": item.id,
        "title": item.title,
        "room_id": item.room_id,
        "department": item.department,
        "lecturer": item.lecturer,
        "tags": list(item.tags),
        "recorded_at": iso(item.recorded_at),
        "duration_s": item.duration_s,
        "size_bytes": item.size_bytes,
        "kind": item.kind,
        "status": item.status,
        "files": [
            {
                "name": file.name,
                "role": file.role,
                "media_type": file.media_type,
                "size": file.plaintext_size,
                "encrypted": file.encrypted,
                "url": f"{base}/files/{file.name}",
            }
            for file in item.files
        ],
        "play_url": f"{base}/play" if item.files else None,
    }
