"""Playback under ``/library``: an item's files served with single byte ranges, so a browser
``<video>`` can seek. Encrypted files are decrypted chunk by chunk in an executor, only where the
requested range falls; nothing reads or decrypts on the event loop."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web

from mcu.crypto.atrest import CHUNK_SIZE, AtRestError, EncryptedFile, TamperedError, unwrap_key
from mcu.infra.httpapi import ApiError
from mcu.library.items import LibraryItems, actor_of
from mcu.library.shares import PlaybackAccess, link_fingerprint
from mcu.recorder.catalogue import LibraryFile, LibraryItem

__all__ = ["Playback", "RangeNotSatisfiable", "byte_range"]

log = logging.getLogger(__name__)

_WINDOW: Final = 16 * CHUNK_SIZE
"""Bytes read (and, for encrypted files, decrypted) per executor call while streaming."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


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


# --- the routes --------------------------------------------------------------------------------


class Playback:
    """The playback routes: access checked per item, then the file streamed."""

    def __init__(self, items: LibraryItems, access: PlaybackAccess, master_key: bytes) -> None:
        self._items, self._access = items, access
        self._master_key = master_key

    async def play(self, request: web.Request) -> web.StreamResponse:
        """``GET /library/{id}/play``: the composite file, else the first."""
        item_id = request.match_info["id"]
        item, player = await self._item(request, item_id)
        file = item.playable()
        if file is None:
            raise ApiError(404, "not_found", "the item has no files")
        return await self._serve(request, item, file, _Seen(player, "library.played"))

    async def file(self, request: web.Request) -> web.StreamResponse:
        """``GET /library/{id}/files/{name}``."""
        item_id, name = request.match_info["id"], request.match_info["name"]
        item, player = await self._item(request, item_id)
        file = item.file(name) if _NAME.fullmatch(name) else None
        if file is None:
            raise ApiError(404, "not_found", f"no file {name!r} in this item")
        return await self._serve(request, item, file, _Seen(player, "library.downloaded"))

    async def _item(self, request: web.Request, item_id: str) -> tuple[LibraryItem, _Player]:
        """The item and who plays it, if the request may (a staff member within their scope, or
        a share link's holder); a refused share link is recorded before the refusal goes out."""
        try:
            access = await self._access.check(request, item_id)
        except ApiError as exc:
            tokens = request.query.getall("token", [])
            if exc.status in (401, 403) and len(tokens) == 1:
                self._items.record(
                    request,
                    "library.share_refused",
                    item_id,
                    "share link",
                    link=link_fingerprint(tokens[0]),
                    code=exc.error,
                )
            raise
        if access is None:
            link = link_fingerprint(request.query["token"])
            return await self._items.existing(item_id), _Player("share link", link)
        return await self._items.seen_by(item_id, access), _Player(actor_of(access))

    async def _serve(
        self, request: web.Request, item: LibraryItem, file: LibraryFile, seen: _Seen
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        path = self._items.on_disk(file)
        key = unwrap_key(self._master_key, file.wrapped_key_bytes()) if file.encrypted else None
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
        return await self._stream(request, item, file, path, encrypted, size, seen)

    async def _stream(
        self,
        request: web.Request,
        item: LibraryItem,
        file: LibraryFile,
        path: Path,
        encrypted: EncryptedFile | None,
        size: int,
        seen: _Seen,
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
        if first == 0 and request.method != "HEAD":
            # A player asks for many ranges while it plays and seeks; one from the first byte
            # starts a viewing (or a download), and is the one recorded.
            self._items.record(
                request,
                seen.action,
                item.id,
                seen.player.actor,
                file=file.name,
                **({"link": seen.player.link} if seen.player.link else {}),
            )
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


@dataclass(frozen=True)
class _Player:
    """Who plays an item, as the audit trail names them."""

    actor: str
    "The platform user's id, ``admin`` (the admin token) or ``share link``."
    link: str | None = None
    "A share link's :func:`~mcu.library.shares.link_fingerprint`; None for staff."


@dataclass(frozen=True)
class _Seen:
    """What a served file is recorded as: who, and whether playing or downloading."""

    player: _Player
    action: str


def _plain_size(path: Path) -> int:
    return path.stat().st_size


def _read_plain(path: Path, start: int, end: int) -> bytes:
    with open(path, "rb") as file:
        file.seek(start)
        data = file.read(end - start + 1)
    if len(data) != end - start + 1:
        raise OSError(f"file shrank while being served ({len(data)} of {end - start + 1} bytes)")
    return data
