"""Calls between nodes: signed with the cluster secret, bound to method, path and body, short
lived and good once; keys derived per purpose."""

from __future__ import annotations

import jwt
import pytest

from mcu.crypto.clustercalls import (
    CALL_LIFETIME_S,
    ForgedCall,
    NodeCredentials,
    ReplayGuard,
    derive_key,
)

SECRET = b"c" * 40
NOW = 1_800_000_000.0
PATH = "/internal/rooms/r1/relays"
BODY = b'{"worker": 0}'


def test_a_call_signed_by_a_node_names_it() -> None:
    a, b = NodeCredentials(SECRET, "node-a"), NodeCredentials(SECRET, "node-b")
    credential = a.sign("post", PATH, BODY, now=NOW)
    assert b.verify(credential, "POST", PATH, BODY, now=NOW + 1) == "node-a"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", PATH, BODY), ("POST", PATH + "x", BODY), ("POST", PATH, b'{"worker": 1}')],
)
def test_a_credential_is_good_for_its_own_call_only(method: str, path: str, body: bytes) -> None:
    credential = NodeCredentials(SECRET, "a").sign("POST", PATH, BODY, now=NOW)
    with pytest.raises(ForgedCall, match="another"):
        NodeCredentials(SECRET, "b").verify(credential, method, path, body, now=NOW)


def test_a_credential_is_good_once_and_for_a_short_while() -> None:
    a, b = NodeCredentials(SECRET, "a"), NodeCredentials(SECRET, "b")
    credential = a.sign("POST", PATH, BODY, now=NOW)
    b.verify(credential, "POST", PATH, BODY, now=NOW)
    with pytest.raises(ForgedCall, match="used before"):
        b.verify(credential, "POST", PATH, BODY, now=NOW + 1)
    late = a.sign("POST", PATH, BODY, now=NOW)
    with pytest.raises(ForgedCall, match="expired"):
        b.verify(late, "POST", PATH, BODY, now=NOW + CALL_LIFETIME_S + 10)
    early = a.sign("POST", PATH, BODY, now=NOW + 60)
    with pytest.raises(ForgedCall, match="future"):
        b.verify(early, "POST", PATH, BODY, now=NOW)


def test_forgeries_are_refused() -> None:
    b = NodeCredentials(SECRET, "b")
    outsider = NodeCredentials(b"x" * 40, "a").sign("POST", PATH, BODY, now=NOW)
    for credential in (None, "", "not.a.jwt", "x" * 5000, outsider):
        with pytest.raises(ForgedCall):
            b.verify(credential, "POST", PATH, BODY, now=NOW)
    # alg none, and a token with the claims but a long lifetime
    unsigned = jwt.encode({"iss": "a"}, key=None, algorithm="none")
    with pytest.raises(ForgedCall):
        b.verify(unsigned, "POST", PATH, BODY, now=NOW)
    key = derive_key(SECRET, "calls")
    forever = jwt.encode(
        {"iss": "a", "htm": "POST", "htu": PATH, "bh": "", "iat": NOW, "exp": NOW + 86400,
         "jti": "j"},
        key,
        algorithm="HS256",
    )  # fmt: skip
    with pytest.raises(ForgedCall):
        b.verify(forever, "POST", PATH, BODY, now=NOW)


def test_keys_differ_by_purpose_and_secret() -> None:
    keys = {
        derive_key(SECRET, "calls"),
        derive_key(SECRET, "invites"),
        derive_key(b"d" * 40, "calls"),
    }
    assert len(keys) == 3 and derive_key(SECRET, "calls") == derive_key(SECRET, "calls")


def test_the_replay_guard_is_bounded_and_forgets_expired_ids() -> None:
    guard = ReplayGuard(capacity=3)
    for index in range(10):
        assert guard.first_use(f"j{index}", NOW + 30, NOW)
    assert len(guard._seen) <= 3
    assert guard.first_use("old", NOW + 1, NOW) and not guard.first_use("old", NOW + 1, NOW)
    assert guard.first_use("old", NOW + 100, NOW + 2)  # expired, so new again
