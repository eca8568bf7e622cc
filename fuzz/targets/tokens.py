"""Invite tokens (``mcu.crypto.tokens.InviteSigner.verify``), from a join frame or a WHIP bearer.

Raw token text, or a fuzzed payload signed with the key (what a key shared with an older format
could have signed). Refusal: :class:`~mcu.crypto.tokens.InvalidInvite`. Property: an accepted
invite is for the room asked, unexpired, with a known role.
"""

from __future__ import annotations

import json

from mcu.crypto.tokens import ROLES, InvalidInvite, InviteSigner

from ..harness import Crash, Input, text

_SIGNER = InviteSigner(b"fuzzing-invite-key-0123456789")
_NOW = 1_800_000_000.0
_ROOM = "cardio-1"


def invite_token(data: bytes) -> None:
    """One token."""
    source = Input(data)
    mode = source.byte()
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
        invite = _SIGNER.verify(token, _ROOM, now=_NOW, room_created_at=_NOW - 86400)
    except InvalidInvite:
        return
    if invite.room_id != _ROOM or invite.expires_at <= _NOW or invite.role not in ROLES:
        raise Crash(f"accepted {invite}")
