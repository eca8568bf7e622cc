"""The library's HTTP inputs (``mcu.library``): Range headers, share tokens (signed and checked
in ``mcu.crypto.tokens``) and the query strings of a search and an upload.

Properties: a byte range lies within the file and is not empty; a query is refused only with a
400; a share token is accepted only for its item, unexpired, with the expiry it was signed with.
"""

from __future__ import annotations

import json

from yarl import URL

from mcu.crypto.tokens import InvalidShare, ShareSigner
from mcu.infra.httpapi import ApiError
from mcu.library.playback import RangeNotSatisfiable, byte_range
from mcu.library.search import parse_search
from mcu.library.uploads import parse_upload_params

from ..harness import Crash, Input, text

_SIGNER = ShareSigner(b"fuzzing-share-key-0123456789")
_NOW = 1_800_000_000.0


def range_header(data: bytes) -> None:
    """A ``Range`` header (as aiohttp decodes it: Latin-1) against a file size."""
    source = Input(data)
    size = source.uint(8) >> source.byte() % 64
    header = source.rest().decode("latin-1")
    try:
        selected = byte_range(header, size)
    except RangeNotSatisfiable:
        return
    if selected is None:
        return
    first, last = selected
    if not 0 <= first <= last < size:
        raise Crash(f"bytes {first}-{last} of a {size}-byte file")


def library_query(data: bytes) -> None:
    """A query string, parsed by yarl as aiohttp does, into a search and into upload metadata."""
    query = URL.build(path="/api/library", query_string=text(data)).query
    for parse in (parse_search, parse_upload_params):
        try:
            parse(query.items())
        except ApiError as exc:
            if exc.status != 400:
                raise Crash(f"a query refused with {exc.status}") from None


def share_token(data: bytes) -> None:
    """A share token: raw text, or a payload signed with the key (what an old format could be)."""
    source = Input(data)
    mode = source.byte()
    item = "item-1"
    body = text(source.rest())
    if mode & 1:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return
        try:
            token = _SIGNER._serializer.dumps(payload)
        except UnicodeEncodeError:
            return  # a lone surrogate: no signer can sign it, so no such token exists
    else:
        token = body
    try:
        expires = _SIGNER.verify(token, item, now=_NOW)
    except InvalidShare:
        return
    if not expires > _NOW:
        raise Crash(f"an expired token accepted (expiry {expires})")
