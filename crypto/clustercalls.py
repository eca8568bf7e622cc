"""What the nodes of a cluster prove to each other with the secret they share.

Every node holds the same ``cluster_secret`` (never stored in Redis). From it:

- :func:`derive_key` derives one independent key per purpose (HKDF-SHA256), so the key that
  signs calls between nodes is not the one that signs invites, or keys relayed media;
- :class:`NodeCredentials` signs a call from one node to another and checks a received one: a
  short-lived JWT (HS256, by PyJWT) binding the caller, the method, the path and a SHA-256 of the
  body, so a captured credential cannot be replayed on another route or with another body, and
  is refused a second time within its lifetime (:class:`ReplayGuard`).

A machine without the secret can neither forge a call nor derive any of the keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "CALL_LIFETIME_S",
    "MAX_CREDENTIAL_CHARS",
    "ForgedCall",
    "NodeCredentials",
    "ReplayGuard",
    "derive_key",
]

CALL_LIFETIME_S = 30.0
"""A call's credential is good this long after it was made: enough for a slow link and a few
seconds of clock skew between data centres (NTP keeps them far closer), short enough that a
captured one is soon worthless even where the replay guard has forgotten it."""
MAX_CREDENTIAL_CHARS = 2048
"Longer strings are no credential of ours: refused before any parsing."
_ALGORITHM = "HS256"
_SKEW_S = 5.0
"Clock skew forgiven between nodes."
_SALT = b"mcu cluster v1"
_REPLAY_CAPACITY = 100_000
"""Credentials remembered at most (oldest forgotten first): far above the calls a node receives
in ``CALL_LIFETIME_S``, and bounded whatever a flood of valid-looking tokens does."""


class ForgedCall(Exception):
    """A call between nodes whose credential is missing, malformed, expired, replayed, or made
    for another method, path or body."""


def derive_key(cluster_secret: bytes, purpose: str, length: int = 32) -> bytes:
    """The key for ``purpose`` (e.g. ``"calls"``, ``"invites"``) derived from the cluster
    secret; the same on every node, independent between purposes."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=purpose.encode()).derive(
        cluster_secret
    )


def _body_hash(body: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()


class ReplayGuard:
    """The ids of credentials already accepted, until they expire; bounded in size."""

    def __init__(self, capacity: int = _REPLAY_CAPACITY) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_use(self, jti: str, expires_at: float, now: float) -> bool:
        """Record ``jti``; False when it was seen before and has not expired."""
        while self._seen:
            oldest, expiry = next(iter(self._seen.items()))
            if expiry > now and len(self._seen) < self.capacity:
                break
            del self._seen[oldest]
        # Entries arrive in about the order they expire (one lifetime for all), so the loop
        # above forgets nearly all expired ones; this catches the rest.
        if self._seen.get(jti, now) > now:
            return False
        self._seen.pop(jti, None)
        self._seen[jti] = expires_at
        return True


@dataclass(frozen=True)
class _Claims:
    node: str
    jti: str
    expires_at: float


class NodeCredentials:
    """Signs calls this node makes and checks the calls it receives."""

    def __init__(self, cluster_secret: bytes, node_id: str) -> None:
        self.node_id = node_id
        self._key = derive_key(cluster_secret, "calls")
        self._replays = ReplayGuard()

    def sign(self, method: str, path: str, body: bytes = b"", now: float | None = None) -> str:
        """The credential for one call of ``method`` on ``path`` (with its query) with
        ``body``."""
        issued = time.time() if now is None else now
        claims = {
            "iss": self.node_id,
            "htm": method.upper(),
            "htu": path,
            "bh": _body_hash(body),
            "iat": int(issued),
            "exp": int(issued + CALL_LIFETIME_S),
            "jti": secrets.token_urlsafe(16),
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM)

    def verify(
        self, credential: str | None, method: str, path: str, body: bytes, now: float | None = None
    ) -> str:
        """The calling node's id; raises :class:`ForgedCall` saying why the call is refused."""
        if not credential:
            raise ForgedCall("no node credential")
        if len(credential) > MAX_CREDENTIAL_CHARS:
            raise ForgedCall("node credential too long")
        at = time.time() if now is None else now
        try:
            decoded = jwt.decode(
                credential,
                self._key,
                algorithms=[_ALGORITHM],
                # Times are judged below against ``at``, which may be a test's clock.
                options={
                    "require": ["iss", "htm", "htu", "bh", "iat", "exp", "jti"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise ForgedCall(f"bad node credential: {exc}") from None
        claims = self._check(decoded, method, path, body, at)
        if not self._replays.first_use(claims.jti, claims.expires_at, at):
            raise ForgedCall("node credential used before")
        return claims.node

    @staticmethod
    def _check(
        decoded: dict[str, object], method: str, path: str, body: bytes, at: float
    ) -> _Claims:
        node, jti = decoded.get("iss"), decoded.get("jti")
        exp, iat = decoded.get("exp"), decoded.get("iat")
        if not (isinstance(node, str) and node and isinstance(jti, str) and jti):
            raise ForgedCall("node credential without caller or id")
        if not (_is_number(exp) and _is_number(iat)):
            raise ForgedCall("node credential without valid times")
        assert isinstance(exp, int | float) and isinstance(iat, int | float)
        if exp + _SKEW_S < at or exp - iat > CALL_LIFETIME_S:
            raise ForgedCall("node credential expired")
        if iat > at + _SKEW_S:
            raise ForgedCall("node credential made in the future")
        if decoded.get("htm") != method.upper() or decoded.get("htu") != path:
            raise ForgedCall("node credential made for another call")
        bh = decoded.get("bh")
        if not isinstance(bh, str) or not hmac.compare_digest(bh, _body_hash(body)):
            raise ForgedCall("node credential made for another body")
        return _Claims(node=node, jti=jti, expires_at=float(exp) + _SKEW_S)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
