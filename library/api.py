"""The on-demand library over HTTP: a staff API under ``/api/library`` and playback under
``/library``.

Staff (the admin bearer token) search, describe, upload, delete and share items; a share link
(a signed, expiring token for one item) lets anyone holding it play that item. Playback serves
single byte ranges so a browser ``<video>`` can seek; encrypted files are decrypted chunk by chunk
in an executor, only where the range falls. docs/library.md is the reference.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Annotated, Any, Final, NoReturn, TypeVar

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from mcu.crypto.atrest import (
    CHUNK_SIZE,
    AtRestError,
    DecryptingReader,
    EncryptedFile,
    EncryptingWriter,
    TamperedError,
    new_data_key,
    open_encrypted_writer,
    plaintext_size,
    unwrap_key,
    wrap_key,
)
from mcu.crypto.tokens import InvalidShare, ShareSigner
from mcu.infra.httpapi import (
    ApiError,
    bearer_matches,
    describe_validation_error,
    error_response,
    plausible_moment,
    read_body,
)
from mcu.recorder.catalogue import (
    ITEM_ID,
    Catalogue,
    FileRole,
    LibraryFile,
    LibraryItem,
    new_item_id,
)

__all__ = [
    "MASTER_KEY_NAME",
    "MAX_UPLOAD_BYTES",
    "SHARE_KEY_NAME",
    "RangeNotSatisfiable",
    "byte_range",
    "setup_library",
]

log = logging.getLogger(__name__)

MASTER_KEY_NAME: Final = "library-master-key"
"""Suggested ``load_or_create_secret`` name of the key that wraps every file's data key."""
SHARE_KEY_NAME: Final = "library-share-key"
"""Suggested ``load_or_create_secret`` name of the key that signs share links."""
MAX_UPLOAD_BYTES: Final = 2 * 1024**3
"""Largest courseware upload accepted; larger ones get 413."""
MAX_BODY_BYTES: Final = 64 * 1024
"""Largest JSON body accepted by the staff API."""
UPLOADS_DIRNAME: Final = "library"
"""Uploads live in ``data_dir/library/<item id>/``."""
_WINDOW: Final = 16 * CHUNK_SIZE
"""Bytes read (and, for encrypted files, decrypted) per executor call while streaming."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

_M = TypeVar("_M", bound=BaseModel)
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Tags = Annotated[list[Tag], Field(max_length=32)]
TtlSeconds = Annotated[int, Field(ge=60, le=2_592_000)]


# --- byte ranges -------------------------------------------------------------------------------


class RangeNotSatisfiable(Exception):
    """The ``Range`` header asks only for bytes past the end (416)."""


_RANGE = re.compile(r"bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)
_POSITION_DIGITS = 18
"Digits of a range position read exactly; a longer one is past the end of any file."
_BEYOND_ANY_FILE = 10**_POSITION_DIGITS


def _position(digits: str) -> int:
    # int() refuses more than 4,300 digits (and is slow well before); leading zeros are allowed.
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _POSITION_DIGITS else _BEYOND_ANY_FILE


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte positions a ``Range`` header selects in a body of
    ``size`` bytes, or None to send the whole body.

    One range is honoured (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``); a missing, malformed or
    multi-range header gets the whole body, as RFC 9110 allows. Positions of any length are
    read (a longer one than any file is just past the end). Raises ``RangeNotSatisfiable``
    when the range starts past the end or asks for the last 0 bytes.
    """
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None
        suffix = _position(last_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size - 1
    first = _position(first_text)
    last = _position(last_text) if last_text else size - 1
    if last_text and last < first:
        return None
    if first >= size:
        raise RangeNotSatisfiable
    return first, min(last, size - 1)


# --- request bodies and parameters ---------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class UpdateItem(_Body):
    """``PATCH /api/library/{id}``; only fields present change, null clears department or
    lecturer."""

    title: Title | None = None
    department: Label | None = None
    lecturer: Label | None = None
    tags: Tags | None = None


class CreateShare(_Body):
    """``POST /api/library/{id}/share``."""

    ttl_seconds: TtlSeconds = 86_400


class _UploadParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    department: Label | None = None
    lecturer: Label | None = None
    tags: str = ""
    encrypt: bool | None = None


class _QueryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: Annotated[str, StringConstraints(max_length=200)] = ""
    department: Label | None = None
    from_: float | None = Field(default=None, alias="from")
    "Unix time of the earliest recording (``from``: a date's start, or a time with a zone)."
    to: float | None = None
    "Unix time just after the latest recording (``to``: the next day's start, or a time)."
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _moment(cls, value: object, info: ValidationInfo) -> float:
        if not isinstance(value, str):
            raise ValueError("must be an ISO-8601 date or time")
        return _moment(value, end_of_day=info.field_name == "to")


def _query_dict(query: Iterable[tuple[str, str]]) -> dict[str, str]:
    pairs = list(query)
    values = dict(pairs)
    if len(values) != len(pairs):
        raise ApiError(400, "bad_request", "a query parameter is repeated")
    return values


def _bad_request(exc: ValidationError) -> NoReturn:
    raise ApiError(400, "bad_request", describe_validation_error(exc))


def _validate(model: type[_M], values: dict[str, Any]) -> _M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        _bad_request(exc)


async def _parse(request: web.Request, model: type[_M], *, empty_ok: bool = False) -> _M:
    body = await read_body(request, MAX_BODY_BYTES)
    if empty_ok and not body.strip():
        body = b"{}"
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        _bad_request(exc)


@dataclass(frozen=True)
class LibrarySearch:
    """A validated ``GET /api/library`` query, as the catalogue takes it."""

    text: str | None
    "Words that must all occur (None: any item)."
    department: str | None
    "Exact department, case-insensitive."
    recorded_from: float | None
    "Unix time, inclusive."
    recorded_to: float | None
    "Unix time, exclusive (a bare date's whole day is included)."
    limit: int
    "Page size."
    offset: int
    "Items skipped."


def parse_search(query: Iterable[tuple[str, str]]) -> LibrarySearch:
    """The search a query string's ``(name, value)`` pairs ask for; ApiError 400 if malformed."""
    params = _validate(_QueryParams, _query_dict(query))
    return LibrarySearch(
        text=params.q or None,
        department=params.department,
        recorded_from=params.from_,
        recorded_to=params.to,
        limit=params.limit,
        offset=params.offset,
    )


def parse_upload_params(query: Iterable[tuple[str, str]]) -> tuple[_UploadParams, list[str]]:
    """An upload's metadata from its query string, and its tags; ApiError 400 if malformed."""
    params = _validate(_UploadParams, _query_dict(query))
    tags = [tag.strip() for tag in params.tags.split(",") if tag.strip()]
    if len(tags) > 32 or any(len(tag) > 64 for tag in tags):
        raise ApiError(400, "bad_request", "tags: at most 32, each up to 64 characters")
    return params, tags


def _moment(text: str, *, end_of_day: bool) -> float:
    """The Unix time a ``from``/``to`` parameter means; ``ValueError`` says what is wrong.

    A bare date means that UTC day (``to`` the start of the next one); a time needs its zone, as
    everywhere in the API.
    """
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("not an ISO-8601 date or time") from None
    if moment.tzinfo is None:
        raise ValueError("a time needs a zone, e.g. 'Z'")
    # Checked before adding a day: the day after 9999-12-31 is not a date.
    plausible_moment(moment)
    if len(text) == 10 and end_of_day:
        moment += timedelta(days=1)
    return moment.timestamp()


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


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


# --- the handlers ------------------------------------------------------------------------------


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


class _Library:
    """Route handlers sharing the catalogue, keys and settings."""

    def __init__(
        self,
        catalogue: Catalogue,
        data_dir: Path,
        master_key: bytes,
        admin_token: str,
        signer: ShareSigner,
        encrypt_uploads: bool,
        max_upload_bytes: int,
    ) -> None:
        self.catalogue, self.signer = catalogue, signer
        self.data_dir = data_dir.resolve()
        self.master_key = master_key
        self.encrypt_uploads = encrypt_uploads
        self.max_upload_bytes = max_upload_bytes
        self._token = admin_token.encode("utf-8")

    # Shared plumbing.

    def _is_admin(self, request: web.Request) -> bool:
        return bearer_matches(request, self._token)

    async def _guard(
        self, request: web.Request, handler: _Handler, *, staff: bool
    ) -> web.StreamResponse:
        response: web.StreamResponse
        try:
            if staff and not self._is_admin(request):
                log.info(
                    "library: refused %s %s from %s", request.method, request.path, request.remote
                )
                raise ApiError(
                    401,
                    "unauthorized",
                    "send Authorization: Bearer <admin token>",
                    {"WWW-Authenticate": 'Bearer realm="mcu-admin"'},
                )
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

    async def _existing(self, item_id: str) -> LibraryItem:
        item = await self.catalogue.get(item_id) if ITEM_ID.fullmatch(item_id) else None
        if item is None:
            raise ApiError(404, "not_found", f"no library item {item_id!r}")
        return item

    def _on_disk(self, file: LibraryFile) -> Path:
        path = (self.data_dir / file.path).resolve()
        if not path.is_relative_to(self.data_dir):
            # The catalogue is ours, but a path must never lead out of the data directory.
            log.error("library: file %s points outside the data directory", file.name)
            raise ApiError(404, "not_found", f"file {file.name!r} is not available")
        return path

    def _item_json(self, item: LibraryItem) -> dict[str, Any]:
        base = f"/library/{item.id}"
        return {
            "id": item.id,
            "title": item.title,
            "room_id": item.room_id,
            "department": item.department,
            "lecturer": item.lecturer,
            "tags": list(item.tags),
            "recorded_at": _iso(item.recorded_at),
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

    # Staff API.

    async def list_items(self, request: web.Request) -> web.Response:
        """``GET /api/library``."""
        search = parse_search(request.query.items())
        page = await self.catalogue.query(
            text=search.text,
            department=search.department,
            recorded_from=search.recorded_from,
            recorded_to=search.recorded_to,
            limit=search.limit,
            offset=search.offset,
        )
        return web.json_response(
            {"items": [self._item_json(item) for item in page.items], "total": page.total}
        )

    async def get_item(self, request: web.Request) -> web.Response:
        """``GET /api/library/{id}``."""
        return web.json_response(self._item_json(await self._existing(request.match_info["id"])))

    async def update_item(self, request: web.Request) -> web.Response:
        """``PATCH /api/library/{id}``."""
        item_id = request.match_info["id"]
        await self._existing(item_id)
        body = await _parse(request, UpdateItem)
        given = body.model_fields_set
        for name in ("title", "tags"):
            if name in given and getattr(body, name) is None:
                raise ApiError(400, "bad_request", f"{name} cannot be null")
        item = await self.catalogue.update_metadata(
            item_id,
            **{name: getattr(body, name) for name in given},
        )
        if item is None:
            raise ApiError(404, "not_found", f"no library item {item_id!r}")
        log.info("library: %s updated (%s)", item_id, ", ".join(sorted(given)) or "nothing")
        return web.json_response(self._item_json(item))

    async def delete_item(self, request: web.Request) -> web.Response:
        """``DELETE /api/library/{id}``: the files, then the entry."""
        item = await self._existing(request.match_info["id"])
        if item.status == "recording":
            raise ApiError(409, "recording", "the item is still being recorded")
        paths = [self._on_disk(file) for file in item.files]
        await asyncio.get_running_loop().run_in_executor(None, self._remove_files, paths)
        await self.catalogue.delete(item.id)
        log.info("library: %s deleted", item.id)
        return web.Response(status=204)

    def _remove_files(self, paths: list[Path]) -> None:
        for path in paths:
            path.unlink(missing_ok=True)
        for parent in {path.parent for path in paths}:
            if parent != self.data_dir and parent.is_relative_to(self.data_dir):
                try:
                    parent.rmdir()  # only when empty
                except OSError:
                    pass

    async def share_item(self, request: web.Request) -> web.Response:
        """``POST /api/library/{id}/share``."""
        item = await self._existing(request.match_info["id"])
        body = await _parse(request, CreateShare, empty_ok=True)
        now = time.time()
        token = self.signer.issue(item.id, body.ttl_seconds, now=now)
        log.info("library: share link for %s (%d s)", item.id, body.ttl_seconds)
        return web.json_response(
            {
                "token": token,
                "url": f"/library/{item.id}/play?token={token}",
                "expires_at": _iso(now + body.ttl_seconds),
            },
            status=201,
        )

    async def upload(self, request: web.Request) -> web.Response:
        """``POST /api/library``: raw MP4 or PDF body, metadata in the query string."""
        params, tags = parse_upload_params(request.query.items())
        encrypt = self.encrypt_uploads if params.encrypt is None else params.encrypt
        if self.encrypt_uploads and not encrypt:
            raise ApiError(400, "bad_request", "encrypt: this server encrypts every upload")
        limit = self.max_upload_bytes
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
                    folder = self.data_dir / UPLOADS_DIRNAME / item_id
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
            await self.catalogue.create(item)
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
        return web.json_response(self._item_json(item), status=201)

    def _uploaded_item(
        self,
        item_id: str,
        params: _UploadParams,
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
                wrap_key(self.master_key, upload.data_key)
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
            path=upload.path.relative_to(self.data_dir).as_posix(),
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

    # Playback.

    def _check_access(self, request: web.Request, item_id: str) -> None:
        if self._is_admin(request):
            return
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
            self.signer.verify(token, item_id)
        except InvalidShare as exc:
            if exc.reason == "wrong_item":
                raise ApiError(403, "forbidden", "the share link is for another item") from None
            raise ApiError(
                401, "unauthorized", "the share link is invalid or has expired"
            ) from None

    async def play(self, request: web.Request) -> web.StreamResponse:
        """``GET /library/{id}/play``: the composite file, else the first."""
        item_id = request.match_info["id"]
        self._check_access(request, item_id)
        item = await self._existing(item_id)
        file = item.playable()
        if file is None:
            raise ApiError(404, "not_found", "the item has no files")
        return await self._serve(request, item, file)

    async def file(self, request: web.Request) -> web.StreamResponse:
        """``GET /library/{id}/files/{name}``."""
        item_id, name = request.match_info["id"], request.match_info["name"]
        self._check_access(request, item_id)
        item = await self._existing(item_id)
        file = item.file(name) if _NAME.fullmatch(name) else None
        if file is None:
            raise ApiError(404, "not_found", f"no file {name!r} in this item")
        return await self._serve(request, item, file)

    async def _serve(
        self, request: web.Request, item: LibraryItem, file: LibraryFile
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        path = self._on_disk(file)
        key = unwrap_key(self.master_key, file.wrapped_key_bytes()) if file.encrypted else None
        # An encrypted file's records are walked once per request, not once per window.
        encrypted: EncryptedFile | None = None
        try:
            if key is not None:
                encrypted = await loop.run_in_executor(None, EncryptedFile, path, key)
                size = encrypted.size
            else:
                size = await loop.run_in_executor(None, _plain_size, path)
        except TamperedError:
            log.error("library: %s file %s failed authentication", item.id, file.name)
            raise ApiError(500, "corrupt", "the file is damaged") from None
        except (OSError, AtRestError):
            log.warning("library: %s file %s is missing or unreadable", item.id, file.name)
            raise ApiError(404, "not_found", f"file {file.name!r} is not available") from None
        return await self._stream(request, item, file, path, encrypted, size)

    async def _stream(
        self,
        request: web.Request,
        item: LibraryItem,
        file: LibraryFile,
        path: Path,
        encrypted: EncryptedFile | None,
        size: int,
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        try:
            selected = byte_range(request.headers.get("Range"), size)
        except RangeNotSatisfiable:
            raise ApiError(
                416,
                "range_not_satisfiable",
                f"the file has {size} bytes",
                {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
            ) from None
        first, last = selected if selected is not None else (0, size - 1)
        length = last - first + 1

        def read(start: int, end: int) -> bytes:
            if encrypted is not None:
                return encrypted.read_range(start, end)
            return _read_plain(path, start, end)

        def window_end(start: int) -> int:
            return min(last, (start // _WINDOW + 1) * _WINDOW - 1)

        # Read the first window before sending headers, so a damaged file still gets an error.
        head = b""
        if length > 0 and request.method != "HEAD":
            try:
                head = await loop.run_in_executor(None, read, first, window_end(first))
            except TamperedError:
                log.error("library: %s file %s failed authentication", item.id, file.name)
                raise ApiError(500, "corrupt", "the file is damaged") from None
        response = web.StreamResponse(status=206 if selected is not None else 200)
        response.content_type = file.media_type
        response.content_length = length
        response.headers["Accept-Ranges"] = "bytes"
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Content-Disposition"] = f'inline; filename="{file.name}"'
        if selected is not None:
            response.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        await response.prepare(request)
        if request.method == "HEAD" or length == 0:
            await response.write_eof()
            return response
        await response.write(head)
        position = first + len(head)
        while position <= last:
            end = window_end(position)
            try:
                data = await loop.run_in_executor(None, read, position, end)
            except (OSError, AtRestError) as exc:
                # The status line is sent; a connection cut short is what tells the player.
                log.error("library: %s file %s failed mid-stream: %s", item.id, file.name, exc)
                if request.transport is not None:
                    request.transport.close()
                raise ConnectionResetError("library file failed mid-stream") from None
            await response.write(data)
            position = end + 1
        await response.write_eof()
        return response


def _plain_size(path: Path) -> int:
    return path.stat().st_size


def _read_plain(path: Path, start: int, end: int) -> bytes:
    with open(path, "rb") as file:
        file.seek(start)
        data = file.read(end - start + 1)
    if len(data) != end - start + 1:
        raise OSError(f"file shrank while being served ({len(data)} of {end - start + 1} bytes)")
    return data


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
) -> None:
    """Mount the staff API at ``/api/library`` and playback at ``/library`` on ``app``.

    ``master_key`` (32 bytes, e.g. ``load_or_create_secret(data_dir, MASTER_KEY_NAME)``) wraps
    every file's data key; ``signer`` signs share links; ``encrypt_uploads`` seals uploaded
    courseware at rest (then a request cannot opt out). The catalogue's lifetime belongs to the
    caller.
    """
    if len(admin_token) < 16:
        raise ValueError("admin token must be at least 16 characters")
    if len(master_key) != 32:
        raise ValueError("master key must be 32 bytes")
    library = _Library(
        catalogue, data_dir, master_key, admin_token, signer, encrypt_uploads, max_upload_bytes
    )
    staff = web.Application(middlewares=[library.staff_middleware])
    staff.router.add_get("", library.list_items, allow_head=False)
    staff.router.add_post("", library.upload)
    staff.router.add_get("/{id}", library.get_item, allow_head=False)
    staff.router.add_patch("/{id}", library.update_item)
    staff.router.add_delete("/{id}", library.delete_item)
    staff.router.add_post("/{id}/share", library.share_item)
    app.add_subapp("/api/library", staff)
    playback = web.Application(middlewares=[library.playback_middleware])
    playback.router.add_get("/{id}/play", library.play)
    playback.router.add_get("/{id}/files/{name}", library.file)
    app.add_subapp("/library", playback)
