"""Which role a credential admits to a room, with wrong passwords throttled.

Shared by every entry point (the WebSocket join, WHIP, WHEP, the home worker answering an edge).
Refusals are :class:`Refused`, a domain error each endpoint turns into its own wire error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast, get_args

from mcu.crypto.tokens import InvalidInvite, InviteSigner, Role
from mcu.signaling.rooms.store import RoomRecord

__all__ = [
    "Admission",
    "Refused",
    "invite_role",
]


class Refused(Exception):
    """A credential admits nobody: ``code`` names why (``wrong_password``, ``bad_invite``,
    ``unknown_room``, ``rate_limited``); ``retry_after`` for ``rate_limited``."""

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def invite_role(signer: InviteSigner, record: RoomRecord, token: str) -> Role:
    """The role a signed invite admits to ``record``'s room, or :class:`Refused`
    (``bad_invite``). Never throttled: signatures cannot be guessed, so nobody's guesses can
    refuse a valid invite."""
    try:
        # Invites issued before the room (id) was re-created are void.
        return signer.verify(token, record.id, room_created_at=record.created_at).role
    except InvalidInvite as exc:
        raise Refused("bad_invite", str(exc)) from None


@dataclass(frozen=True)
class Admission:
    """What a WHEP credential is, as the room's home worker judged it."""

    own: bool = False
    "A live participant's session token (its page is already in the room)."
    role: Role | None = None
    "Else the role it admits,"
    refused: Refused | None = None
    "or why it admits nobody."

    def to_json(self) -> dict[str, Any]:
        """The home's answer to an edge."""
        refused = self.refused
        return {
            "own": self.own,
            "role": self.role,
            "refused": None
            if refused is None
            else {
                "code": refused.code,
                "message": refused.message,
                "retry_after": refused.retry_after,
            },
        }

    @classmethod
    def from_json(cls, body: Any) -> Admission:
        """An edge reading the home's answer (anything malformed admits nobody)."""
        if not isinstance(body, dict):
            return cls(refused=Refused("bad_invite", "the room's worker gave no answer"))
        refused = body.get("refused")
        if isinstance(refused, dict):
            retry = refused.get("retry_after")
            return cls(
                refused=Refused(
                    str(refused.get("code")),
                    str(refused.get("message")),
                    float(retry) if isinstance(retry, int | float) else None,
                )
            )
        role = body.get("role")
        if body.get("own") is True:
            return cls(own=True)
        if role in get_args(Role):
            return cls(role=cast(Role, role))
        return cls(refused=Refused("bad_invite", "the room's worker gave no answer"))
