"""Time-limited TURN credentials in the form coturn's ``use-auth-secret`` checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math

import pytest

from mcu.crypto.turn import TurnCredential, turn_credential

SECRET = b"north-star-secret"
NOW = 1_700_000_000.0


def test_known_vector() -> None:
    issued = turn_credential(SECRET, "p1a2b3c4d", NOW, 86400)
    # coturn splits the user name at the first ':' and reads the expiry before it.
    assert issued.username == "1700086400:p1a2b3c4d"
    assert issued.expires_at == 1_700_086_400
    # Worked out once by hand (Python's hmac over the user name) and written down.
    assert issued.credential == "bs3ejlbjr/Ji/S0std//Gc1hSQ8="
    by_hand = hmac.new(SECRET, b"1700086400:p1a2b3c4d", hashlib.sha1).digest()
    assert base64.b64decode(issued.credential) == by_hand
    assert len(by_hand) == 20  # SHA-1, as coturn's default (no --sha256 option set)


def test_expiry_rounds_up_and_counts_from_now() -> None:
    issued = turn_credential(SECRET, "w1", NOW + 0.25, 600)
    assert issued.expires_at == math.ceil(NOW + 0.25) + 600
    assert issued.username.split(":", 1) == [str(issued.expires_at), "w1"]


def test_every_input_changes_the_password() -> None:
    base = turn_credential(SECRET, "p1", NOW, 3600)
    assert turn_credential(b"another-secret", "p1", NOW, 3600).credential != base.credential
    assert turn_credential(SECRET, "p2", NOW, 3600).credential != base.credential
    assert turn_credential(SECRET, "p1", NOW + 1, 3600).credential != base.credential


def test_password_stays_out_of_repr() -> None:
    issued = turn_credential(SECRET, "p1", NOW, 3600)
    assert issued.credential not in repr(issued)
    assert isinstance(issued, TurnCredential)


@pytest.mark.parametrize(
    ("secret", "user", "now", "ttl", "message"),
    [
        (b"", "p1", NOW, 60, "secret must not be empty"),
        (SECRET, "", NOW, 60, "user id"),
        (SECRET, "a:b", NOW, 60, "user id"),
        (SECRET, 'a"b', NOW, 60, "user id"),
        (SECRET, "x" * 65, NOW, 60, "user id"),
        (SECRET, "p1", NOW, 0, "at least one second"),
        (SECRET, "p1", math.nan, 60, "finite"),
        (SECRET, "p1", math.inf, 60, "finite"),
    ],
)
def test_refuses_bad_input(secret: bytes, user: str, now: float, ttl: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        turn_credential(secret, user, now, ttl)
