"""The platform's access tokens (``mcu.crypto.accesstokens.AccessTokens.verify``), from ``?token=``,
a join frame or any HTTP bearer token, and ``looks_like_jwt``, which sorts bearer tokens.

Raw token text, or fuzzed claims signed with the configured key (what the platform could sign).
Refusal: :class:`~mcu.crypto.accesstokens.InvalidAccessToken`. Property: an accepted token was
signed by the key, is unexpired, has a known role and a room role names its room.
"""

from __future__ import annotations

import json

import jwt

from mcu.crypto.accesstokens import (
    ACCESS_ROLES,
    ROOM_ROLES,
    AccessTokens,
    ApiKey,
    InvalidAccessToken,
    looks_like_jwt,
)

from ..harness import Crash, Input, text

_SECRET = b"fuzzing-platform-signing-key-0123456789"
_TOKENS = AccessTokens([ApiKey("his", secret=_SECRET)])
_NOW = 1_800_000_000.0


def access_token(data: bytes) -> None:
    """One token."""
    source = Input(data)
    mode = source.byte()
    body = text(source.rest())
    if mode & 1:
        try:
            claims = json.loads(body)
        except (ValueError, RecursionError):
            return
        if not isinstance(claims, dict):
            return
        try:
            token = jwt.encode(claims, _SECRET, algorithm="HS256")
        except (TypeError, ValueError, UnicodeEncodeError, jwt.PyJWTError):
            return  # nothing the platform's library would sign either
    else:
        token = body
    looks_like_jwt(token)
    try:
        grant = _TOKENS.verify(token, _NOW)
    except InvalidAccessToken:
        return
    if (
        grant.key_id != "his"
        or grant.role not in ACCESS_ROLES
        or grant.expires_at + 30 <= _NOW
        or (grant.role in ROOM_ROLES and not grant.room)
    ):
        raise Crash(f"accepted {grant}")
