"""The platform's access tokens: verified with PyJWT against the configured keys, judged at an
explicit time. Every refusal has its reason."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mcu.crypto.accesstokens import (
    LEEWAY_SECONDS,
    AccessGrant,
    AccessTokens,
    ApiKey,
    InvalidAccessToken,
    issue_access_token,
    load_public_key,
    looks_like_jwt,
)
from mcu.crypto.tokens import InviteSigner

NOW = 1_700_000_000.0
HIS = ApiKey("his", secret=b"hospital-information-system-key-0123456789")
OTHER = ApiKey("his", secret=b"another-secret-under-the-same-id-0123456789")
PLATFORM = ApiKey("pacs", private_key=ec.generate_private_key(ec.SECP256R1()))
TOKENS = AccessTokens([HIS, ApiKey("pacs", public_key=PLATFORM.public_key)])


def mint(key: ApiKey = HIS, **claims: object) -> str:
    fields: dict[str, object] = {
        "subject": "u-1",
        "role": "chair",
        "room": "cardio-1",
        "name": "Dr Li",
        "ttl_seconds": 600,
        "now": NOW,
    }
    return issue_access_token(key, **(fields | claims))  # type: ignore[arg-type]


def reason(token: str, now: float = NOW) -> str:
    with pytest.raises(InvalidAccessToken) as caught:
        TOKENS.verify(token, now)
    why: str = caught.value.reason
    return why


def b64(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def test_valid_tokens_grant_their_claims() -> None:
    grant = TOKENS.verify(mint(jti="t-1", department="cardiology"), NOW + 10)
    assert grant == AccessGrant(
        key_id="his",
        subject="u-1",
        role="chair",
        expires_at=NOW + 600,
        name="Dr Li",
        room="cardio-1",
        department="cardiology",
        jti="t-1",
    )
    signed = TOKENS.verify(mint(PLATFORM, role="staff", room=None), NOW)
    assert (signed.key_id, signed.role, signed.room) == ("pacs", "staff", None)
    assert signed.jti  # a fresh one unless given


def test_expiry_and_not_before_with_leeway() -> None:
    token = mint(ttl_seconds=60)
    assert TOKENS.verify(token, NOW + 60 + LEEWAY_SECONDS - 1).subject == "u-1"
    assert reason(token, NOW + 60 + LEEWAY_SECONDS) == "expired"
    later = mint(not_before=NOW + 300)
    assert reason(later, NOW) == "not_yet_valid"
    assert TOKENS.verify(later, NOW + 300 - LEEWAY_SECONDS).subject == "u-1"


def test_wrong_key_unknown_key_and_tampering() -> None:
    assert reason(mint(OTHER)) == "bad_signature"
    stranger = ApiKey("lis", secret=b"laboratory-information-system-0123456789")
    assert reason(mint(stranger)) == "unknown_key"
    header, payload, signature = mint(role="viewer").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = b64(claims | {"role": "chair"})
    assert reason(f"{header}.{forged}.{signature}") == "bad_signature"
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert reason(f"{header}.{payload}.{flipped}") == "bad_signature"


def test_alg_none_and_other_algorithms_are_refused() -> None:
    claims = {"iss": "his", "sub": "u", "role": "chair", "room": "r", "exp": NOW + 600}
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    assert reason(unsigned) == "bad_algorithm"
    long_key = b"k" * 64
    assert reason(jwt.encode(claims, long_key, algorithm="HS512")) == "bad_algorithm"
    # The public key's PEM used as an HMAC secret (algorithm confusion): refused.
    assert PLATFORM.public_key is not None
    pem = PLATFORM.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused = jwt.encode(claims | {"iss": "pacs"}, b"x" * 32, algorithm="HS256")
    assert reason(confused) == "bad_algorithm"
    assert load_public_key(pem) is not None
    # An ES256 token under the secret key's id is refused too.
    assert reason(mint(ApiKey("his", private_key=ec.generate_private_key(ec.SECP256R1())))) == (
        "bad_algorithm"
    )


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": None},
        {"role": "superuser"},
        {"role": "participant", "room": None},  # a room role names its room
        {"exp": "tomorrow"},
        {"exp": 10**400},
        {"name": "x" * 65},
        {"room": 7},
        {"nbf": "soon"},
    ],
    ids=repr,
)
def test_bad_claims(claims: dict[str, object]) -> None:
    base = {"iss": "his", "sub": "u", "role": "chair", "room": "r", "exp": int(NOW + 600)}
    merged = {k: v for k, v in (base | claims).items() if v is not None}
    token = jwt.encode(merged, HIS.secret, algorithm="HS256")  # type: ignore[arg-type]
    assert reason(token) in ("bad_claims", "malformed")


def test_malformed_and_oversized() -> None:
    for text in ("", "a.b.c", "not a token", "x" * 5000, "eyJhbGciOiJIUzI1NiJ9.e30"):
        assert reason(text) == "malformed"


def test_only_jwts_look_like_jwts() -> None:
    assert looks_like_jwt(mint())
    assert looks_like_jwt(f"{b64({'alg': 'none'})}.{b64({})}.")
    invite = InviteSigner(b"0123456789abcdef0123").issue("cardio-1", "chair", 60, now=time.time())
    for text in (invite, "a room password", "pass.word.here", "x" * 5000):
        assert not looks_like_jwt(text), text


def test_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        ApiKey("short", secret=b"too short")
    with pytest.raises(ValueError, match="configured twice"):
        AccessTokens([HIS, OTHER])
    with pytest.raises(ValueError, match="cannot sign"):
        mint(ApiKey("pub", public_key=PLATFORM.public_key))
    assert "hospital" not in repr(HIS)
    assert not AccessTokens().enabled
