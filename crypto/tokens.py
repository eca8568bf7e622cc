"""Signed, self-expiring tokens: invite links that admit one role to one room, and library share
links that let their holder play one item."""

from __future__ import annotations

import hmac
import math
import time
from dataclasses import dataclass
from typing import Any, Literal, cast

from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = [
    "ROLES",
    "InvalidInvite",
    "InvalidShare",
    "Invite",
    "InviteSigner",
    "Role",
    "ShareSigner",
    "finite_number",
]

Role = Literal["chair", "participant", "viewer"]
ROLES: tuple[Role, ...] = ("chair", "participant", "viewer")
_SALT = "room-invite"
_SHARE_SALT = "library-share"
"Its own salt, so no invite is ever a valid share token, nor the other way round."


@dataclass(frozen=True)
class Invite:
    """What a verified invite grants."""

    room_id: str
    """The only room the invite admits to."""
    role: Role
    """The role the holder joins with."""
    expires_at: float
    """Unix time after which the invite is refused."""
    issued_at: float
    """Unix time it was signed; lets a re-created room refuse its predecessor's invites."""


class InvalidInvite(Exception):
    """An invite was refused; ``reason`` is ``bad_signature``, ``malformed``, ``wrong_room``,
    ``expired`` or ``revoked``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InviteSigner:
    """Issues and checks invite tokens with an HMAC key; each token carries its own expiry."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("invite signing secret must be at least 16 bytes")
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)

    def issue(self, room_id: str, role: str, ttl_seconds: int, now: float | None = None) -> str:
        """A URL-safe token admitting ``role`` to ``room_id`` for ``ttl_seconds`` from ``now``."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        issued = time.time() if now is None else now
        payload = {"room": room_id, "role": role, "iat": issued, "exp": issued + ttl_seconds}
        return self._serializer.dumps(payload)

    def verify(
        self,
        token: str,
        room_id: str,
        now: float | None = None,
        *,
        room_created_at: float | None = None,
    ) -> Invite:
        """The invite in ``token`` if it is genuine, for ``room_id`` and unexpired at ``now``.

        Pass ``room_created_at`` to refuse invites signed before the room (re)appeared, so a
        deleted and re-created room id does not admit its predecessor's guests.
        """
        try:
            # Expiry is ours to check (per-token TTL, injectable clock), so no max_age here.
            payload: Any = self._serializer.loads(token)
        except BadSignature:
            raise InvalidInvite("bad_signature") from None
        invite = _parse(payload)
        if invite.room_id != room_id:
            raise InvalidInvite("wrong_room")
        if (time.time() if now is None else now) >= invite.expires_at:
            raise InvalidInvite("expired")
        if room_created_at is not None and invite.issued_at < room_created_at:
            raise InvalidInvite("revoked")
        return invite


class InvalidShare(Exception):
    """A share token was refused; ``reason`` is ``bad_signature``, ``malformed``, ``expired`` or
    ``wrong_item``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ShareSigner:
    """Signs and checks share tokens (HMAC via itsdangerous, its own salt): one item, until an
    expiry the token carries."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("share signing secret must be at least 16 bytes")
        self._serializer = URLSafeTimedSerializer(secret, salt=_SHARE_SALT)

    def issue(self, item_id: str, ttl_seconds: int, now: float | None = None) -> str:
        """A URL-safe token letting its holder play ``item_id`` for ``ttl_seconds`` from
        ``now``."""
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        issued = time.time() if now is None else now
        return self._serializer.dumps({"item": item_id, "iat": issued, "exp": issued + ttl_seconds})

    def verify(self, token: str, item_id: str, now: float | None = None) -> float:
        """The expiry of ``token`` if it is genuine, for ``item_id`` and unexpired at ``now``."""
        try:
            payload: Any = self._serializer.loads(token)
        except BadSignature:
            raise InvalidShare("bad_signature") from None
        expires = finite_number(payload.get("exp")) if isinstance(payload, dict) else None
        if (
            not isinstance(payload, dict)
            or not isinstance(payload.get("item"), str)
            or expires is None
        ):
            raise InvalidShare("malformed")
        if (time.time() if now is None else now) >= expires:
            raise InvalidShare("expired")
        # surrogatepass: a JSON string may hold a lone surrogate, which plain UTF-8 refuses.
        signed_item = payload["item"].encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(signed_item, item_id.encode("utf-8", "surrogatepass")):
            raise InvalidShare("wrong_item")
        return expires


def _parse(payload: Any) -> Invite:
    # Only we can sign, but a key shared with an older format must not crash the join path.
    if not isinstance(payload, dict):
        raise InvalidInvite("malformed")
    room, role = payload.get("room"), payload.get("role")
    issued, expires = finite_number(payload.get("iat")), finite_number(payload.get("exp"))
    if not isinstance(room, str) or role not in ROLES or issued is None or expires is None:
        raise InvalidInvite("malformed")
    return Invite(room_id=room, role=cast(Role, role), expires_at=expires, issued_at=issued)


def finite_number(value: Any) -> float | None:
    """A JSON number from a token as a finite float; None for anything else.

    JSON integers have no size limit, and one too large for a float raises OverflowError on
    conversion, so that counts as "anything else" too.
    """
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
