"""``POST /rooms/{room}/documents``: a presenter uploads a document to show as slides."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import Counter, Gauge

from mcu.signaling.endpoints.keys import ROOMS, SANDBOX
from mcu.signaling.rooms.e2ee import E2eeRefused, refuse_in_e2ee
from mcu.signaling.rooms.errors import RoomDocumentsFull, RoomError
from mcu.slides.documents import DocumentError, DocumentLimits, load_document, sniff

logger = logging.getLogger(__name__)

LIMITS = DocumentLimits()
_STATUS = {
    "too_large": 413,
    "unsupported_type": 415,
    "too_many_pages": 422,
    "image_too_large": 422,
    "corrupt": 400,
    "too_costly": 422,
}


UPLOAD_BUFFER_BYTES = 200 * 1024 * 1024
"""Bytes of documents held in memory by uploads in progress, in one process: four uploads at the
50 MiB limit. Past it an upload is refused (503) rather than letting 20 at once take a gigabyte."""
BUFFERED = Gauge("mcu_upload_buffered_bytes", "Bytes of documents held by uploads in progress.")
REFUSED = Counter(
    "mcu_uploads_refused_busy_total", "Document uploads refused because the upload memory was full."
)


@dataclass
class UploadBudget:
    """Memory that uploads in progress may hold together (taken chunk by chunk)."""

    limit: int = UPLOAD_BUFFER_BYTES
    used: int = 0

    def take(self, size: int) -> bool:
        """Hold ``size`` more bytes; False (holding nothing more) when that would pass the
        limit."""
        if self.used + size > self.limit:
            return False
        self.used += size
        BUFFERED.set(self.used)
        return True

    def give(self, size: int) -> None:
        """``size`` bytes taken earlier are free again."""
        self.used -= size
        BUFFERED.set(self.used)


BUDGET = UploadBudget()


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def _busy() -> web.Response:
    return web.json_response(
        {"error": "busy", "message": "too many documents are being uploaded; try again shortly"},
        status=503,
        headers={"Retry-After": "5"},
    )


async def upload_document(request: web.Request) -> web.Response:
    """Validate and keep an uploaded document for the participant holding the session token."""
    rooms = request.app[ROOMS]
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else ""
    found = rooms.participant_by_token(request.match_info["room"], token) if token else None
    if found is None:
        return _error(
            401, "unauthorized", "a session token of a participant in this room is needed"
        )
    room, participant = found
    if not participant.visible:  # a lecture's viewer: it watches, and never presents
        return _error(403, "forbidden", "viewers cannot present; raise a hand to speak")
    try:
        refuse_in_e2ee(room, "slides")  # a document is rendered, in plaintext, by the server
    except E2eeRefused as exc:
        return _error(409, exc.code, exc.message)
    if request.content_length is not None and request.content_length > LIMITS.max_bytes:
        return _error(413, "too_large", f"documents are limited to {LIMITS.max_bytes} bytes")
    held = 0
    try:
        body = bytearray()
        async for chunk in request.content.iter_chunked(256 * 1024):
            if not BUDGET.take(len(chunk)):
                REFUSED.inc()
                return _busy()
            held += len(chunk)
            body += chunk
            if len(body) > LIMITS.max_bytes:
                return _error(
                    413, "too_large", f"documents are limited to {LIMITS.max_bytes} bytes"
                )
        if not body:
            return _error(400, "corrupt", "the upload is empty")
        try:
            # In the sandbox, which runs a few jobs at a time per process; the rest queue.
            document = await load_document(bytes(body), LIMITS, request.app[SANDBOX])
        except DocumentError as exc:
            if exc.code == "corrupt":  # decoder messages name internals; say what matters
                kind = sniff(bytes(body[:512])) or "file"
                return _error(400, "corrupt", f"the {kind.upper()} file is damaged or truncated")
            return _error(_STATUS.get(exc.code, 400), exc.code, exc.message)
    finally:
        BUDGET.give(held)
    if participant.closed:
        return _error(401, "unauthorized", "the participant has left")
    try:
        document_id = room.content.add_document(participant, document)
    except RoomDocumentsFull as exc:
        document.close()
        return _error(409, exc.code, exc.message)
    except RoomError as exc:  # demoted to viewer while the upload was checked
        document.close()
        return _error(403, exc.code, exc.message)
    logger.info(
        "room %s: %s uploaded %s (%d pages)", room.id, participant.id, document.kind, document.pages
    )
    return web.json_response(
        {
            "document_id": document_id,
            "kind": document.kind,
            "pages": document.pages,
            "width": document.width,
            "height": document.height,
        },
        status=201,
    )
