"""Access tokens the hospital platform signs itself: short-lived JWTs naming who, which room or
library scope, which role and until when.

Operators configure one or more API keys: an id and a shared secret (HS256), or an id and an
ES256 public key (the platform keeps the private key). A token's ``iss`` is the key id and
selects the key; only that key's algorithm is accepted, so ``alg: none`` and algorithm
confusion (a public key used as an HMAC secret) are refused. Signatures, the algorithm and the
claims' presence are checked by PyJWT; expiry (``exp``) and ``nbf`` are judged at the ``now``
the caller passes, with a small leeway for clock skew, like the server's other tokens.
Revocation is the caller's: remove the key, or deny the token's ``jti``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mcu.crypto.tokens import finite_number

__all__ = [
    "ACCESS_ROLES",
    "LEEWAY_SECONDS",
    "MIN_SECRET_BYTES",
    "ROOM_ROLES",
    "AccessGrant",
    "AccessRole",
    "AccessTokens",
    "ApiAccess",
    "ApiKey",
    "ApiRefused",
    "InvalidAccessToken",
    "api_access",
    "issue_access_token",
    "load_public_key",
    "looks_like_jwt",
]

AccessRole = Literal["chair", "participant", "viewer", "staff", "admin"]
ACCESS_ROLES: tuple[AccessRole, ...] = get_args(AccessRole)
ROOM_ROLES: frozenset[AccessRole] = frozenset({"chair", "participant", "viewer"})
"Roles that enter one room, so their tokens must name it (``room``)."
LEEWAY_SECONDS = 30.0
"Clock skew forgiven between the platform and the server, on ``exp`` and ``nbf``."
MIN_SECRET_BYTES = 32
"An HS256 key shorter than the hash (RFC 7518 section 3.2) is refused."
MAX_TOKEN_CHARS = 4096
"Longer bearer strings are no token of ours; refused before any parsing."
_MAX_CLAIM_CHARS = {"sub": 128, "name": 64, "room": 128, "department": 64, "jti": 128}
_REQUIRED = ("iss", "sub", "exp", "role")


@dataclass(frozen=True)
class ApiKey:
    """One configured API key: an HMAC secret (HS256) or an ES256 public key."""

    id: str
    "The key id; tokens name it in ``iss``."
    secret: bytes | None = field(default=None, repr=False)
    "The shared secret (HS256); None for a public key."
    public_key: ec.EllipticCurvePublicKey | None = field(default=None, repr=False)
    "A P-256 public key (ES256); None for a secret."
    private_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)
    "The platform's ES256 signing key, only where tokens are issued (tests, the CLI)."

    def __post_init__(self) -> None:
        if (self.secret is None) == (self.public_key is None and self.private_key is None):
            raise ValueError(f"API key {self.id!r} needs a secret or an ES256 key, not both")
        if self.secret is not None and len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError(
                f"API key {self.id!r}: a secret needs at least {MIN_SECRET_BYTES} bytes"
            )
        if self.private_key is not None and self.public_key is None:
            object.__setattr__(self, "public_key", self.private_key.public_key())

    @property
    def algorithm(self) -> str:
        """The one algorithm this key verifies."""
        return "HS256" if self.secret is not None else "ES256"

    def _verifying_key(self) -> bytes | ec.EllipticCurvePublicKey:
        if self.secret is not None:
            return self.secret
        assert self.public_key is not None
        return self.public_key


@dataclass(frozen=True)
class AccessGrant:
    """What a verified access token grants."""

    key_id: str
    "The API key that signed it (``iss``)."
    subject: str
    "The platform's user id (``sub``)."
    role: AccessRole
    "As what (``role``)."
    expires_at: float
    "Unix time it ends (``exp``)."
    name: str | None = None
    "The display name (``name``)."
    room: str | None = None
    "The only room it admits to (``room``); None for staff and admin tokens."
    department: str | None = None
    "The library scope of a staff token (``department``)."
    jti: str | None = None
    "The token's id (``jti``), which the deny list can revoke."


_EXPLANATIONS = {
    "malformed": "the access token is malformed",
    "unknown_key": "the access token names no API key of this server",
    "bad_algorithm": "the access token is not signed with its key's algorithm",
    "bad_signature": "the access token's signature does not match its key",
    "bad_claims": "the access token's claims are missing or malformed",
    "expired": "the access token has expired",
    "not_yet_valid": "the access token is not valid yet",
    "revoked": "the access token has been revoked",
}


class InvalidAccessToken(Exception):
    """An access token was refused; ``reason`` is ``malformed``, ``unknown_key``,
    ``bad_algorithm``, ``bad_signature``, ``bad_claims``, ``expired``, ``not_yet_valid`` or (from
    the deny list) ``revoked``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def explanation(self) -> str:
        """The reason as a sentence for the client."""
        return _EXPLANATIONS.get(self.reason, self.reason)


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer string is meant as a JWT: three dot-separated parts whose header is a
    JSON object naming an ``alg`` (an invite or a password is not)."""
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        return False
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return False
    return isinstance(header.get("alg"), str)


class AccessTokens:
    """Verifies access tokens against the configured API keys."""

    def __init__(self, keys: Iterable[ApiKey] = (), leeway: float = LEEWAY_SECONDS) -> None:
        self._keys: dict[str, ApiKey] = {}
        for key in keys:
            if key.id in self._keys:
                raise ValueError(f"API key id {key.id!r} is configured twice")
            self._keys[key.id] = key
        self._leeway = leeway

    @property
    def enabled(self) -> bool:
        """Whether any API key is configured (else every access token is refused)."""
        return bool(self._keys)

    def verify(self, token: str, now: float) -> AccessGrant:
        """The grant in ``token`` if a configured key signed it and it is valid at ``now``;
        raises :class:`InvalidAccessToken` otherwise."""
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidAccessToken("malformed")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise InvalidAccessToken("malformed") from None
        issuer = unverified.get("iss")
        key = self._keys.get(issuer) if isinstance(issuer, str) else None
        if key is None:
            raise InvalidAccessToken("unknown_key")
        try:
            # Expiry and nbf are judged below at the caller's ``now``; PyJWT checks the
            # signature with the key's one algorithm, the issuer and that the claims are there.
            claims: dict[str, Any] = jwt.decode(
                token,
                key._verifying_key(),
                algorithms=[key.algorithm],
                issuer=key.id,
                options={
                    "require": list(_REQUIRED),
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidAlgorithmError:
            raise InvalidAccessToken("bad_algorithm") from None
        except jwt.InvalidSignatureError:
            raise InvalidAccessToken("bad_signature") from None
        except (jwt.MissingRequiredClaimError, jwt.InvalidIssuerError):
            raise InvalidAccessToken("bad_claims") from None
        except jwt.PyJWTError:
            raise InvalidAccessToken("malformed") from None
        grant = _grant(key.id, claims)
        if now >= grant.expires_at + self._leeway:
            raise InvalidAccessToken("expired")
        if "nbf" in claims:
            not_before = finite_number(claims["nbf"])
            if not_before is None:
                raise InvalidAccessToken("bad_claims")
            if now < not_before - self._leeway:
                raise InvalidAccessToken("not_yet_valid")
        return grant


def _grant(key_id: str, claims: dict[str, Any]) -> AccessGrant:
    """The claims as a grant; ``bad_claims`` when one has the wrong type or size."""
    expires, role = finite_number(claims["exp"]), claims["role"]
    texts: dict[str, str | None] = {}
    for name, limit in _MAX_CLAIM_CHARS.items():
        value = claims.get(name)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= limit):
            raise InvalidAccessToken("bad_claims")
        texts[name] = value
    if expires is None or role not in ACCESS_ROLES or texts["sub"] is None:
        raise InvalidAccessToken("bad_claims")
    if role in ROOM_ROLES and texts["room"] is None:
        raise InvalidAccessToken("bad_claims")  # a room role names its room
    return AccessGrant(
        key_id=key_id,
        subject=texts["sub"],
        role=cast(AccessRole, role),
        expires_at=expires,
        name=texts["name"],
        room=texts["room"],
        department=texts["department"],
        jti=texts["jti"],
    )


def issue_access_token(
    key: ApiKey,
    *,
    subject: str,
    role: AccessRole,
    ttl_seconds: float,
    now: float,
    name: str | None = None,
    room: str | None = None,
    department: str | None = None,
    jti: str | None = None,
    not_before: float | None = None,
) -> str:
    """A token signed with ``key``, as the platform would mint it (the ``mcu token`` command,
    tests). A fresh random ``jti`` is set unless one is given."""
    if role not in ACCESS_ROLES:
        raise ValueError(f"role must be one of {', '.join(ACCESS_ROLES)}, got {role!r}")
    if role in ROOM_ROLES and not room:
        raise ValueError(f"a {role} token needs a room")
    if ttl_seconds <= 0:
        raise ValueError(f"the lifetime must be positive, got {ttl_seconds:g} s")
    claims: dict[str, Any] = {
        "iss": key.id,
        "sub": subject,
        "role": role,
        "iat": int(now),
        "exp": int(now + ttl_seconds),
        "jti": jti or secrets.token_urlsafe(12),
    }
    optional = {"name": name, "room": room, "department": department, "nbf": not_before}
    claims |= {claim: value for claim, value in optional.items() if value is not None}
    if key.secret is not None:
        return jwt.encode(claims, key.secret, algorithm="HS256")
    if key.private_key is None:
        raise ValueError(f"API key {key.id!r} holds only a public key: it cannot sign")
    return jwt.encode(claims, key.private_key, algorithm="ES256")


def load_public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    """A PEM public key for ES256 (a P-256 curve key); ``ValueError`` for anything else."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise ValueError("not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("ES256 needs an EC public key on the P-256 curve")
    return key


@dataclass(frozen=True)
class ApiAccess:
    """Who a request to a staff API (rooms admin, library) is: the admin token's holder, or the
    holder of a staff or admin access token."""

    role: AccessRole
    "``admin`` (the admin token or an admin's access token) or ``staff``."
    department: str | None = None
    "A staff token's ``department``: the library items it sees (None: only items without one)."
    subject: str | None = None
    "The platform's user id; None for the admin token."
    jti: str | None = None
    "The access token's id, for the deny list; None for the admin token or a token without one."


class ApiRefused(Exception):
    """A staff API request was refused; ``code`` is ``unauthorized`` (no usable credential),
    ``bad_token`` (an access token that is not valid) or ``role_not_allowed``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def api_access(
    bearer: str | None,
    admin_token: bytes,
    tokens: AccessTokens,
    now: float,
    roles: frozenset[AccessRole],
) -> ApiAccess:
    """Who ``bearer`` (a request's bearer credential) is to an API that takes ``roles``: the
    admin token is ``admin``; an access token its own role. Raises :class:`ApiRefused`. The
    deny list is the caller's to consult (``jti``)."""
    if bearer is None:
        raise ApiRefused("unauthorized", "send Authorization: Bearer <admin or access token>")
    if hmac.compare_digest(bearer.encode("utf-8", "surrogatepass"), admin_token):
        return ApiAccess("admin")
    if not looks_like_jwt(bearer):
        raise ApiRefused("unauthorized", "send Authorization: Bearer <admin or access token>")
    try:
        grant = tokens.verify(bearer, now)
    except InvalidAccessToken as exc:
        raise ApiRefused("bad_token", exc.explanation) from None
    if grant.role not in roles:
        wanted = " or ".join(sorted(roles))
        raise ApiRefused("role_not_allowed", f"this API needs a {wanted} token, not {grant.role}")
    department = grant.department if grant.role == "staff" else None
    return ApiAccess(grant.role, department, grant.subject, grant.jti)
