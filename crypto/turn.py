"""Time-limited TURN credentials, as coturn checks them with ``use-auth-secret``.

The TURN REST API scheme (draft-uberti-behave-turn-rest): the media server and the TURN server
share a secret; the user name is ``"<expiry unix time>:<user id>"`` and the password is
``base64(HMAC-SHA1(secret, user name))``. coturn recomputes the password from the user name, and
refuses it once the expiry has passed, so the server never tells coturn who is allowed: anyone
holding an unexpired pair may relay, and nobody can make a pair without the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from dataclasses import dataclass, field

__all__ = ["TurnCredential", "turn_credential"]

_USER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""Ids that need no quoting in JSON, a ``Link`` header's quoted string or coturn's log."""


@dataclass(frozen=True)
class TurnCredential:
    """One TURN user name and password, valid until ``expires_at``."""

    username: str
    """``"<expires_at>:<user id>"``."""
    credential: str = field(repr=False)
    """``base64(HMAC-SHA1(secret, username))``: a password, kept out of ``repr`` and logs."""
    expires_at: int
    """Unix time (whole seconds) after which coturn refuses the pair."""


def turn_credential(secret: bytes, user_id: str, now: float, ttl: int) -> TurnCredential:
    """The credential of ``user_id`` for ``ttl`` seconds from ``now`` (Unix time).

    ``user_id`` only labels the allocation in coturn's log (it grants nothing by itself); it
    must be 1-64 characters of ``A-Z a-z 0-9 . _ -``. Raises ``ValueError`` on an empty
    secret, a bad ``user_id``, a ``ttl`` below one second or a ``now`` that is not finite.
    """
    if not secret:
        raise ValueError("the TURN secret must not be empty")
    if _USER_ID.fullmatch(user_id) is None:
        raise ValueError("a TURN user id must be 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-'")
    if ttl < 1:
        raise ValueError(f"a TURN credential must live at least one second, got {ttl}")
    if not math.isfinite(now):
        raise ValueError("now must be a finite Unix time")
    # Rounded up, so a credential never expires before now + ttl.
    expires_at = math.ceil(now) + ttl
    username = f"{expires_at}:{user_id}"
    digest = hmac.new(secret, username.encode("ascii"), hashlib.sha1).digest()
    return TurnCredential(username, base64.b64encode(digest).decode("ascii"), expires_at)
