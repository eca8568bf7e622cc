"""Courseware uploads, ``POST /api/library``: a raw MP4 or PDF body streamed to disk (sealed at
rest when encryption is on), its metadata in the query string, its type told from its first
bytes and, for a video, proven by opening it. File work runs in an executor."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from mcu.crypto.atrest import (
    DecryptingReader,
    EncryptingWriter,
    new_data_key,
    open_encrypted_writer,
    plaintext_size,
    wrap_key,
)
from mcu.infra.httpapi import ApiError
from mcu.library.items import LibraryItems, actor_of, item_json
from mcu.library.params import Label, Title, query_dict, validate
from mcu.library.staff import may_label, request_access
from mcu.recorder.catalogue import FileRole, LibraryFile, LibraryItem, new_item_id

__all__ = ["MAX_UPLOAD_BYTES", "UPLOADS_DIRNAME", "UploadParams", "Uploads", "parse_upload_params"]

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES: Final = 2 * 1024**3
"""Largest courseware upload accepted; larger ones get 413."""
UPLOADS_DIRNAME: Final = "library"
"""Uploads live in ``data_dir/library/<item id>/``."""


class UploadParams(BaseModel):
    """An upload's metadata, from its query string."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    department: Label | None = None
    lecturer: Label | None = None
    tags: str = ""
    "Comma-separated."
    encrypt: bool | None = None
    "None: the server's setting."


def parse_upload_params(query: Iterable[tuple[str, str]]) -> tuple[UploadParams, list[str]]:
    """An upload's metadata from its query string, and its tags; ApiError 400 if malformed."""
    params = validate(UploadParams, query_dict(query))
    tags = [tag.strip() for tag in params.tags.split(",") if tag.strip()]
    if len(tags) > 32 or any(len(tag) > 64 for tag in tags):
        raise ApiError(400, "bad_request", "tags: at most 32, each up to 64 characters")
    return params, tags


def _sniff(head: bytes) -> tuple[str, str, FileRole] | None:
    """(file name, media type, role) of an upload from its first bytes, or None."""
    if head[4:8] == b"ftyp":
        return "video.mp4", "video/mp4", "composite"
    if head.startswith(b"%PDF-"):
        return "document.pdf", "application/pdf", "slides"
    return None


def _probe_mp4(file: Any) -> float | None:
    """The duration of an uploaded MP4 (None when it states none); :class:`ApiError` 415 when
    it is no MP4 holding audio or video (``ftyp`` at byte 4 alone proves nothing)."""
    import av

    try:
        with av.open(file, format="mp4") as container:
            microseconds: int | None = container.duration
            playable = any(s.type in ("video", "audio") for s in container.streams)
    except (av.FFmpegError, OSError, ValueError):
        playable = False
    if not playable:
        raise ApiError(415, "unsupported_type", "the file is not an MP4 with video or audio")
    return None if microseconds is None else round(microseconds / 1_000_000, 3)


@dataclass
class _Upload:
    """An upload being streamed to disk (all methods run in an executor)."""

    path: Path
    encrypted: bool
    data_key: bytes | None
    sink: IO[bytes] | EncryptingWriter | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.data_key is not None:
            self.sink = open_encrypted_writer(self.path, self.data_key)
        else:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            self.sink = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        assert self.sink is not None
        self.sink.write(data)

    def finish(self) -> None:
        if self.sink is not None:
            self.sink.close()

    def discard(self) -> None:
        try:
            self.finish()
        finally:
            self.path.unlink(missing_ok=True)
            try:
                self.path.parent.rmdir()
            except OSError:
                pass


class Uploads:
    """The upload route, with the keys and limits it needs.

    ``encrypt_uploads`` seals every upload at rest (then a request cannot opt out); each file's
    data key is wrapped by ``master_key``.
    """

    def __init__(
        self,
        items: LibraryItems,
        master_key: bytes,
        encrypt_uploads: bool,
        max_upload_bytes: int,
    ) -> None:
        self._items = items
        self._master_key = master_key
        self._encrypt_uploads = encrypt_uploads
        self._max_upload_bytes = max_upload_bytes

    async def upload(self, request: web.Request) -> web.Response:
        """``POST /api/library``: raw MP4 or PDF body, metadata in the query string."""
        params, tags = parse_upload_params(request.query.items())
        access = request_access(request)
        if params.department is None and access.role == "staff":
            params = params.model_copy(update={"department": access.department})
        if not may_label(access, params.department):
            raise ApiError(403, "forbidden", "staff file items under their own department only")
        encrypt = self._encrypt_uploads if params.encrypt is None else params.encrypt
        if self._encrypt_uploads and not encrypt:
            raise ApiError(400, "bad_request", "encrypt: this server encrypts every upload")
        limit = self._max_upload_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(413, "too_large", f"uploads are limited to {limit} bytes")

        loop = asyncio.get_running_loop()
        item_id = new_item_id()
        head = b""
        upload: _Upload | None = None
        received = 0
        data_key = new_data_key() if encrypt else None
        sniffed: tuple[str, str, FileRole] | None = None
        try:
            async for chunk in request.content.iter_chunked(256 * 1024):
                received += len(chunk)
                if received > limit:
                    raise ApiError(413, "too_large", f"uploads are limited to {limit} bytes")
                if upload is None:
                    head += chunk
                    if len(head) < 8:
                        continue
                    sniffed = _sniff(head)
                    if sniffed is None:
                        raise ApiError(415, "unsupported_type", "send an MP4 video or a PDF")
                    folder = self._items.data_dir / UPLOADS_DIRNAME / item_id
                    upload = _Upload(folder / sniffed[0], encrypt, data_key)
                    await loop.run_in_executor(None, upload.open)
                    chunk, head = head, b""
                await loop.run_in_executor(None, upload.write, chunk)
            if upload is None:
                if head:  # a few bytes: too short to be either
                    raise ApiError(415, "unsupported_type", "send an MP4 video or a PDF")
                raise ApiError(400, "bad_request", "the upload is empty")
            await loop.run_in_executor(None, upload.finish)
            item = await loop.run_in_executor(
                None, self._uploaded_item, item_id, params, tags, upload, sniffed
            )
            await self._items.catalogue.create(item)
        except BaseException:
            if upload is not None:
                await loop.run_in_executor(None, upload.discard)
            raise
        log.info(
            "library: upload %s (%s, %d bytes, %s)",
            item.id,
            item.files[0].media_type,
            received,
            "encrypted" if encrypt else "plain",
        )
        self._items.record(
            request,
            "library.uploaded",
            item.id,
            actor_of(access),
            media_type=item.files[0].media_type,
        )
        return web.json_response(item_json(item), status=201)

    def _uploaded_item(
        self,
        item_id: str,
        params: UploadParams,
        tags: list[str],
        upload: _Upload,
        sniffed: tuple[str, str, FileRole] | None,
    ) -> LibraryItem:
        assert sniffed is not None
        name, media_type, role = sniffed
        duration: float | None = None
        if upload.data_key is not None:
            size = plaintext_size(upload.path)
            wrapped: str | None = base64.b64encode(
                wrap_key(self._master_key, upload.data_key)
            ).decode("ascii")
            if media_type == "video/mp4":
                with DecryptingReader(upload.path, upload.data_key) as reader:
                    duration = _probe_mp4(reader)
        else:
            size = upload.path.stat().st_size
            wrapped = None
            if media_type == "video/mp4":
                duration = _probe_mp4(str(upload.path))
        file = LibraryFile(
            name=name,
            role=role,
            media_type=media_type,
            path=upload.path.relative_to(self._items.data_dir).as_posix(),
            encrypted=upload.data_key is not None,
            wrapped_key=wrapped,
            plaintext_size=size,
        )
        return LibraryItem(
            id=item_id,
            title=params.title,
            recorded_at=time.time(),
            kind="upload",
            status="complete",
            department=params.department,
            lecturer=params.lecturer,
            tags=tuple(tags),
            duration_s=duration,
            size_bytes=upload.path.stat().st_size,
            files=(file,),
        )
