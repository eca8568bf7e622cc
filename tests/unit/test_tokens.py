"""Signed, expiring room invites and library share links."""

from __future__ import annotations

import pytest

from mcu.crypto.tokens import InvalidInvite, InvalidShare, Invite, InviteSigner, ShareSigner

SECRET = bytes(range(32))
NOW = 1_700_000_000.0


def reason(signer: InviteSigner, token: str, room_id: str, now: float = NOW) -> str:
    with pytest.raises(InvalidInvite) as caught:
        signer.verify(token, room_id, now=now)
    why: str = caught.value.reason
    return why


def test_valid_invite_round_trips() -> None:
    signer = InviteSigner(SECRET)
    token = signer.issue("cardio-1", "chair", 3600, now=NOW)
    invite = signer.verify(token, "cardio-1", now=NOW + 10)
    assert invite == Invite(room_id="cardio-1", role="chair", expires_at=NOW + 3600, issued_at=NOW)
    # A fresh signer with the same secret (e.g. after a restart) accepts it too.
    assert InviteSigner(SECRET).verify(token, "cardio-1", now=NOW).role == "chair"


def test_token_is_url_safe() -> None:
    token = InviteSigner(SECRET).issue("r", "participant", 60, now=NOW)
    assert all(c.isalnum() or c in "-_." for c in token)


def test_tampered_token_is_refused() -> None:
    signer = InviteSigner(SECRET)
    token = signer.issue("cardio-1", "participant", 3600, now=NOW)
    # Change the signature's first character: the last one may only carry base64 padding bits.
    body, signature = token.rsplit(".", 1)
    first = "A" if signature[0] != "A" else "B"
    assert reason(signer, f"{body}.{first}{signature[1:]}", "cardio-1") == "bad_signature"
    # Promote the invite: graft a chair payload onto the participant token's signature.
    chair = signer.issue("cardio-1", "chair", 3600, now=NOW)
    chair_payload = chair.rsplit(".", 2)[0]
    _, timestamp, signature = token.rsplit(".", 2)
    forged = f"{chair_payload}.{timestamp}.{signature}"
    assert reason(signer, forged, "cardio-1") == "bad_signature"
    assert reason(signer, "", "cardio-1") == "bad_signature"
    assert reason(signer, "not-a-token", "cardio-1") == "bad_signature"


def test_other_secret_is_refused() -> None:
    token = InviteSigner(bytes(32)).issue("cardio-1", "chair", 3600, now=NOW)
    assert reason(InviteSigner(SECRET), token, "cardio-1") == "bad_signature"


def test_expiry_is_checked_against_now() -> None:
    signer = InviteSigner(SECRET)
    token = signer.issue("cardio-1", "participant", 60, now=NOW)
    assert signer.verify(token, "cardio-1", now=NOW + 59.9).expires_at == NOW + 60
    assert reason(signer, token, "cardio-1", now=NOW + 60) == "expired"
    assert reason(signer, token, "cardio-1", now=NOW + 86_400) == "expired"


def test_each_invite_has_its_own_ttl() -> None:
    signer = InviteSigner(SECRET)
    short = signer.issue("r", "participant", 60, now=NOW)
    long = signer.issue("r", "participant", 7 * 86_400, now=NOW)
    later = NOW + 3600
    assert reason(signer, short, "r", now=later) == "expired"
    assert signer.verify(long, "r", now=later).role == "participant"


def test_wrong_room_is_refused() -> None:
    signer = InviteSigner(SECRET)
    token = signer.issue("cardio-1", "chair", 3600, now=NOW)
    assert reason(signer, token, "cardio-2") == "wrong_room"


def test_invites_older_than_the_room_are_revoked() -> None:
    signer = InviteSigner(SECRET)
    token = signer.issue("cardio-1", "chair", 3600, now=NOW)
    assert signer.verify(token, "cardio-1", now=NOW + 1, room_created_at=NOW).role == "chair"
    with pytest.raises(InvalidInvite) as caught:
        signer.verify(token, "cardio-1", now=NOW + 1, room_created_at=NOW + 0.5)
    assert caught.value.reason == "revoked"


def test_issue_rejects_bad_arguments() -> None:
    signer = InviteSigner(SECRET)
    with pytest.raises(ValueError, match="role"):
        signer.issue("r", "admin", 60, now=NOW)
    with pytest.raises(ValueError, match="ttl_seconds"):
        signer.issue("r", "chair", 0, now=NOW)
    with pytest.raises(ValueError, match="16 bytes"):
        InviteSigner(b"short")


@pytest.mark.parametrize("exp", [10**400, -(10**400)], ids=["huge", "huge-negative"])
def test_a_signed_expiry_too_large_for_a_float_is_malformed(exp: int) -> None:
    # A key shared with another format could sign any JSON; a 400-digit integer made
    # math.isfinite raise OverflowError instead of the invite being refused.
    signer = InviteSigner(SECRET)
    payload = {"room": "r", "role": "chair", "iat": NOW, "exp": exp}
    token = signer._serializer.dumps(payload)
    assert reason(signer, token, "r") == "malformed"


def test_a_share_token_with_an_expiry_too_large_for_a_float_is_malformed() -> None:
    signer = ShareSigner(SECRET)
    token = signer._serializer.dumps({"item": "i", "iat": NOW, "exp": 10**400})
    with pytest.raises(InvalidShare) as caught:
        signer.verify(token, "i", now=NOW)
    assert caught.value.reason == "malformed"


def test_invites_and_share_links_never_pass_for_each_other() -> None:
    # The same secret signs both only by mistake, but then a share link for an item whose id
    # is a room's must still not admit anyone to that room, nor an invite play an item.
    invite = InviteSigner(SECRET).issue("cardio-1", "chair", 3600, now=NOW)
    share = ShareSigner(SECRET).issue("cardio-1", 3600, now=NOW)
    with pytest.raises(InvalidShare) as refused:
        ShareSigner(SECRET).verify(invite, "cardio-1", now=NOW)
    assert refused.value.reason == "bad_signature"
    assert reason(InviteSigner(SECRET), share, "cardio-1") == "bad_signature"
    assert ShareSigner(SECRET).verify(share, "cardio-1", now=NOW) == NOW + 3600
