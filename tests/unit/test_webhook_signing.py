"""The webhook signature: what the header holds, and what a receiver's check accepts."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from mcu.crypto.webhooksig import sign, signature_header, verify_signature

SECRET = b"platform-secret-0123456789"
BODY = b'{"id":"evt_1","type":"room.started","time":"2026-12-06T08:00:00.000Z","data":{}}'
NOW = 1_796_544_000


def test_the_header_is_time_and_hmac_of_time_dot_body() -> None:
    header = signature_header(SECRET, NOW, BODY)
    # Computed here independently, as a receiver would.
    expected = hmac.new(SECRET, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"
    assert sign(SECRET, NOW, BODY) == expected and len(expected) == 64


def test_a_receiver_accepts_a_fresh_signature_of_the_same_body() -> None:
    header = signature_header(SECRET, NOW, BODY)
    assert verify_signature(SECRET, header, BODY, now=NOW + 299)
    assert verify_signature(SECRET, header, BODY, now=NOW - 299)  # a clock a little behind


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        (b"another-secret-0123456789", BODY, NOW),  # not our secret
        (SECRET, BODY.replace(b"room.started", b"room.finished"), NOW),  # body changed
        (SECRET, BODY + b" ", NOW),  # even by a byte
        (SECRET, BODY, NOW + 301),  # a replay, after the tolerance
    ],
    ids=["wrong-secret", "other-body", "extra-byte", "too-old"],
)
def test_a_receiver_refuses_what_was_not_signed_now_by_us(
    secret: bytes, body: bytes, now: int
) -> None:
    assert not verify_signature(secret, signature_header(SECRET, NOW, BODY), body, now=now)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "v1=" + "0" * 64,  # no time
        f"t={NOW}",  # no signature
        f"t=-{NOW},v1=" + "0" * 64,
        f"t={NOW}0000000000,v1=" + "0" * 64,  # absurd time
        "t=١٢٣,v1=" + "0" * 64,  # Arabic-Indic digits are digits to str.isdigit
        f"t={NOW},v1=ü" + "0" * 63,
        f"t={NOW}," + "v1=0," * 200,
    ],
)
def test_a_malformed_header_is_refused_not_an_error(header: str) -> None:
    assert not verify_signature(SECRET, header, BODY, now=NOW)


def test_one_matching_entry_among_several_is_enough() -> None:
    good = signature_header(SECRET, NOW, BODY).split(",")[1]
    assert verify_signature(SECRET, f"t={NOW},v1={'0' * 64},{good}", BODY, now=NOW)
