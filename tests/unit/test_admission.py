"""Admission as a table: every way in (join, WHIP, WHEP) x what it presents x the room's state,
decided by the pure function on an explicit clock, the password's verdict given as the shell
would find it."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import cast

import pytest

from mcu.crypto.accesstokens import AccessRole, AccessTokens, ApiKey, issue_access_token
from mcu.crypto.tokens import InviteSigner
from mcu.signaling.rooms.admission import (
    Admitted,
    Attempt,
    Bearer,
    CheckPassword,
    CheckRevocation,
    Credential,
    Entry,
    Facts,
    InviteToken,
    Password,
    PasswordCheck,
    PlatformToken,
    Refused,
    decide,
)
from mcu.signaling.rooms.store import RoomRecord

T0 = 1_700_000_000.0
SIGNER = InviteSigner(b"admission-table-key-0123456789")
CAPACITY = 4
LOCKOUT = 120.0
TTL = 4 * 3600
"Every invite's lifetime: longer than the rooms here have existed."
JOIN, PUBLISH, WATCH = Entry.JOIN, Entry.PUBLISH, Entry.WATCH

MEETING = RoomRecord(
    "cardio-1", "Cardiology", "<hash>", T0 - 3600, None, None, CAPACITY, kind="meeting"
)
LECTURE = RoomRecord(
    "stroke-4",
    "Stroke care",
    "<hash>",
    T0 - 3600,
    None,
    None,
    CAPACITY,
    kind="lecture",
    viewer_password_hash="<viewer hash>",
)
ROOMS = {"meeting": MEETING, "lecture": LECTURE}

# What hashing each password finds (the shell's verdict); anything else is no password.
ROOM_PASSWORD, VIEWER_PASSWORD, WRONG_PASSWORD = "room-pass", "viewer-pass", "guess-123"
SESSION_TOKEN = "session-of-a-participant"
PASSWORD_KINDS = {"room password", "viewer password", "wrong password"}
PLATFORM_KEY = ApiKey("his", secret=b"the-hospital-platform-signing-key-0123")
TOKENS = AccessTokens([PLATFORM_KEY])
REVOKED_JTI = "revoked-jti"
"The one token id on the deny list."


def _access_token(kind: str, record: RoomRecord) -> str:
    """An access token of ``kind`` (``<role> token`` or what is wrong with it) for ``record``."""
    role, room, key, ttl, now = "chair", record.id, PLATFORM_KEY, 600.0, T0
    options: dict[str, str | float] = {"name": "Dr Wang"}
    first = kind.split()[0]
    if first in ("chair", "participant", "viewer", "staff", "admin"):
        role = first
    elif kind == "expired token":
        now = T0 - 3600
    elif kind == "early token":
        options["not_before"] = T0 + 600
    elif kind == "wrong key token":
        key = ApiKey("his", secret=b"a-key-the-server-does-not-have-0123")
    elif kind == "other room's token":
        room = "neuro-2"
    elif kind == "revoked token":
        options["jti"] = REVOKED_JTI
    token = issue_access_token(
        key,
        subject="u-7",
        role=cast(AccessRole, role),
        room=None if role in ("staff", "admin") else room,
        ttl_seconds=ttl,
        now=now,
        **options,  # type: ignore[arg-type]
    )
    if kind == "tampered token":
        header, payload, signature = token.split(".")
        token = f"{header}.{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    if kind == "alg none token":
        header, payload, _ = token.split(".")
        none = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        token = f"{none}.{payload}."
    return token


def _token(kind: str, record: RoomRecord) -> str:
    """The secret a credential kind presents to ``record``'s room."""
    passwords = {
        "room password": ROOM_PASSWORD,
        "viewer password": VIEWER_PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "session token": SESSION_TOKEN,
        "forged invite": SIGNER.issue(record.id, "chair", TTL, now=T0)[:-4] + "AAAA",
    }
    if kind in passwords:
        return passwords[kind]
    invites = {
        "chair invite": (record.id, "chair", T0),
        "participant invite": (record.id, "participant", T0),
        "viewer invite": (record.id, "viewer", T0),
        "expired invite": (record.id, "chair", T0 - 2 * TTL),
        "other room's invite": ("neuro-2", "chair", T0),
        # Signed before the room id was (re-)created: its predecessor's guest.
        "revoked invite": (record.id, "chair", record.created_at - 60),
    }
    room_id, role, issued = invites[kind]
    return SIGNER.issue(room_id, role, TTL, now=issued)


def _credential(kind: str, entry: Entry, record: RoomRecord) -> Credential:
    if kind == "none":
        return None
    if kind.endswith(" token") and kind != "session token":
        token = _access_token(kind, record)
        # The join page and join frame name it a token; HTTP sends it as the bearer token.
        return PlatformToken(token) if entry is Entry.JOIN else Bearer(token)
    token = _token(kind, record)
    if entry is not Entry.JOIN:
        return Bearer(token)  # HTTP: one bearer token, whatever it is
    return Password(token) if kind in PASSWORD_KINDS | {"session token"} else InviteToken(token)


def _verdict(record: RoomRecord, password: str) -> PasswordCheck:
    if password == ROOM_PASSWORD:
        return PasswordCheck("participant")
    if password == VIEWER_PASSWORD and record.viewer_password_hash is not None:
        return PasswordCheck("viewer")
    return PasswordCheck(None)


def judge(entry: Entry, kind: str, room: str, state: str) -> tuple[str, bool]:
    """The outcome (a role, ``own <role>`` or ``refused <code>``) and whether a password was
    hashed, driving :func:`decide` as the shell does."""
    record: RoomRecord | None = ROOMS[room]
    assert record is not None
    credential = _credential(kind, entry, record)
    seated = 0
    if state == "closed":
        record = replace(record, opens_at=T0 + 60)
    elif state == "ended":
        record = replace(record, closes_at=T0 - 60)
    elif state == "full":
        seated = CAPACITY
    elif state == "full at the default":
        record, seated = replace(record, max_participants=None), 16
    elif state == "recreated":
        record = replace(record, created_at=T0 + 1)  # every invite above predates it
    locked = state in ("throttled", "unknown, throttled")
    if state.startswith("unknown"):
        record = None
    attempt = Attempt(
        entry, "cardio-1" if record is None else record.id, credential, "192.0.2.1", T0
    )
    own = isinstance(credential, Bearer) and credential.token == SESSION_TOKEN
    facts = Facts(
        record,
        default_capacity=16,
        seated=seated,
        # The shell finds the session token of a participant in the live room.
        session_role="participant" if own and record is not None else None,
        # With no such room, the address's lockout is a fact from the start.
        lockout=LOCKOUT if locked and record is None else None,
    )
    decision = decide(attempt, facts, SIGNER, TOKENS)
    if isinstance(decision, CheckRevocation):  # the shell looks the token id up
        facts = replace(facts, revoked=decision.jti == REVOKED_JTI)
        decision = decide(attempt, facts, SIGNER, TOKENS)
        assert not isinstance(decision, CheckRevocation), "asked twice for one token"
    hashed = False
    if isinstance(decision, CheckPassword):
        assert record is not None
        assert credential is not None and decision.password in (
            getattr(credential, "text", None),
            getattr(credential, "token", None),
        )
        if locked:  # the throttle refuses to start the check
            facts = replace(facts, lockout=LOCKOUT)
        else:
            facts, hashed = replace(facts, password=_verdict(record, decision.password)), True
        decision = decide(attempt, facts, SIGNER, TOKENS)
        assert not isinstance(decision, CheckPassword), "asked twice for one password"
    if isinstance(decision, Refused):
        if decision.code == "rate_limited":
            assert decision.retry_after == LOCKOUT
        return f"refused {decision.code}", hashed
    assert isinstance(decision, Admitted)
    assert decision.record == record
    return (f"own {decision.role}" if decision.own_session else decision.role), hashed


HASHED, NOT_HASHED = True, False

TABLE: list[tuple[Entry, str, str, str, str, bool]] = [
    # -- the WebSocket join: a password or an invite ------------------------------------------
    (JOIN, "none", "meeting", "open", "refused no_credential", NOT_HASHED),
    (JOIN, "room password", "meeting", "open", "participant", HASHED),
    (JOIN, "room password", "lecture", "open", "participant", HASHED),
    (JOIN, "viewer password", "lecture", "open", "viewer", HASHED),
    (JOIN, "viewer password", "meeting", "open", "refused wrong_password", HASHED),
    (JOIN, "wrong password", "meeting", "open", "refused wrong_password", HASHED),
    (JOIN, "session token", "meeting", "open", "refused wrong_password", HASHED),
    (JOIN, "chair invite", "meeting", "open", "chair", NOT_HASHED),
    (JOIN, "participant invite", "meeting", "open", "participant", NOT_HASHED),
    (JOIN, "viewer invite", "meeting", "open", "viewer", NOT_HASHED),
    (JOIN, "viewer invite", "lecture", "open", "viewer", NOT_HASHED),
    (JOIN, "expired invite", "meeting", "open", "refused bad_invite", NOT_HASHED),
    (JOIN, "other room's invite", "meeting", "open", "refused bad_invite", NOT_HASHED),
    (JOIN, "revoked invite", "meeting", "open", "refused bad_invite", NOT_HASHED),
    (JOIN, "chair invite", "meeting", "recreated", "refused bad_invite", NOT_HASHED),
    (JOIN, "forged invite", "meeting", "open", "refused bad_invite", NOT_HASHED),
    (JOIN, "room password", "meeting", "unknown", "refused unknown_room", NOT_HASHED),
    (JOIN, "chair invite", "meeting", "unknown", "refused unknown_room", NOT_HASHED),
    (JOIN, "none", "meeting", "unknown", "refused no_credential", NOT_HASHED),
    (JOIN, "room password", "meeting", "unknown, throttled", "refused rate_limited", NOT_HASHED),
    (JOIN, "room password", "meeting", "closed", "refused room_not_open", HASHED),
    (JOIN, "room password", "meeting", "ended", "refused room_not_open", HASHED),
    (JOIN, "wrong password", "meeting", "closed", "refused wrong_password", HASHED),
    (JOIN, "chair invite", "meeting", "closed", "refused room_not_open", NOT_HASHED),
    (JOIN, "viewer invite", "meeting", "closed", "refused room_not_open", NOT_HASHED),
    (JOIN, "room password", "meeting", "full", "refused room_full", HASHED),
    (JOIN, "room password", "meeting", "full at the default", "refused room_full", HASHED),
    (JOIN, "chair invite", "meeting", "full", "refused room_full", NOT_HASHED),
    (JOIN, "viewer invite", "meeting", "full", "viewer", NOT_HASHED),
    (JOIN, "viewer password", "lecture", "full", "viewer", HASHED),
    (JOIN, "room password", "meeting", "throttled", "refused rate_limited", NOT_HASHED),
    (JOIN, "wrong password", "meeting", "throttled", "refused rate_limited", NOT_HASHED),
    (JOIN, "chair invite", "meeting", "throttled", "chair", NOT_HASHED),
    # -- WHIP: publishes, so viewers' credentials do not admit ---------------------------------
    (PUBLISH, "none", "lecture", "open", "refused no_credential", NOT_HASHED),
    (PUBLISH, "room password", "lecture", "open", "participant", HASHED),
    (PUBLISH, "room password", "meeting", "open", "participant", HASHED),
    (PUBLISH, "viewer password", "lecture", "open", "refused not_a_publisher", HASHED),
    (PUBLISH, "wrong password", "lecture", "open", "refused wrong_password", HASHED),
    (PUBLISH, "session token", "lecture", "open", "refused wrong_password", HASHED),
    (PUBLISH, "chair invite", "lecture", "open", "chair", NOT_HASHED),
    (PUBLISH, "participant invite", "lecture", "open", "participant", NOT_HASHED),
    (PUBLISH, "viewer invite", "lecture", "open", "refused not_a_publisher", NOT_HASHED),
    # A broken invite over HTTP is tried as a password: it counts as a wrong one.
    (PUBLISH, "expired invite", "lecture", "open", "refused wrong_password", HASHED),
    (PUBLISH, "other room's invite", "lecture", "open", "refused wrong_password", HASHED),
    (PUBLISH, "room password", "lecture", "unknown", "refused unknown_room", NOT_HASHED),
    (PUBLISH, "room password", "lecture", "unknown, throttled", "refused rate_limited", False),
    (PUBLISH, "room password", "lecture", "closed", "refused room_not_open", HASHED),
    (PUBLISH, "viewer password", "lecture", "closed", "refused not_a_publisher", HASHED),
    (PUBLISH, "room password", "lecture", "full", "refused room_full", HASHED),
    (PUBLISH, "chair invite", "lecture", "full", "refused room_full", NOT_HASHED),
    (PUBLISH, "room password", "lecture", "throttled", "refused rate_limited", NOT_HASHED),
    (PUBLISH, "expired invite", "lecture", "throttled", "refused rate_limited", NOT_HASHED),
    (PUBLISH, "chair invite", "lecture", "throttled", "chair", NOT_HASHED),
    # -- WHEP into a meeting: a viewer invite only, or a participant's own page ----------------
    (WATCH, "none", "meeting", "open", "refused no_credential", NOT_HASHED),
    (WATCH, "viewer invite", "meeting", "open", "viewer", NOT_HASHED),
    (WATCH, "session token", "meeting", "open", "own participant", NOT_HASHED),
    (WATCH, "room password", "meeting", "open", "refused viewer_invite_required", HASHED),
    (WATCH, "chair invite", "meeting", "open", "refused viewer_invite_required", NOT_HASHED),
    (WATCH, "participant invite", "meeting", "open", "refused viewer_invite_required", False),
    (WATCH, "viewer password", "meeting", "open", "refused wrong_password", HASHED),
    (WATCH, "wrong password", "meeting", "open", "refused wrong_password", HASHED),
    (WATCH, "expired invite", "meeting", "open", "refused wrong_password", HASHED),
    (WATCH, "revoked invite", "meeting", "open", "refused wrong_password", HASHED),
    (WATCH, "viewer invite", "meeting", "unknown", "refused unknown_room", NOT_HASHED),
    (WATCH, "viewer invite", "meeting", "unknown, throttled", "refused rate_limited", False),
    (WATCH, "viewer invite", "meeting", "closed", "refused room_not_open", NOT_HASHED),
    (WATCH, "session token", "meeting", "closed", "refused room_not_open", NOT_HASHED),
    (WATCH, "viewer invite", "meeting", "full", "viewer", NOT_HASHED),
    (WATCH, "viewer invite", "meeting", "throttled", "viewer", NOT_HASHED),
    (WATCH, "session token", "meeting", "throttled", "own participant", NOT_HASHED),
    (WATCH, "room password", "meeting", "throttled", "refused rate_limited", NOT_HASHED),
    # -- WHEP into a lecture: any credential of the room ---------------------------------------
    (WATCH, "viewer password", "lecture", "open", "viewer", HASHED),
    (WATCH, "room password", "lecture", "open", "participant", HASHED),
    (WATCH, "chair invite", "lecture", "open", "chair", NOT_HASHED),
    (WATCH, "viewer invite", "lecture", "open", "viewer", NOT_HASHED),
    (WATCH, "session token", "lecture", "open", "own participant", NOT_HASHED),
    (WATCH, "wrong password", "lecture", "open", "refused wrong_password", HASHED),
    (WATCH, "other room's invite", "lecture", "open", "refused wrong_password", HASHED),
    (WATCH, "viewer password", "lecture", "unknown", "refused unknown_room", NOT_HASHED),
    (WATCH, "viewer password", "lecture", "closed", "refused room_not_open", HASHED),
    (WATCH, "viewer password", "lecture", "ended", "refused room_not_open", HASHED),
    # Watching takes no seat, whatever the role.
    (WATCH, "viewer password", "lecture", "full", "viewer", HASHED),
    (WATCH, "room password", "lecture", "full", "participant", HASHED),
    (WATCH, "viewer password", "lecture", "throttled", "refused rate_limited", NOT_HASHED),
    (WATCH, "viewer invite", "lecture", "throttled", "viewer", NOT_HASHED),
    # -- the platform's access tokens: signed by a configured key, for this room and role -----
    (JOIN, "chair token", "meeting", "open", "chair", NOT_HASHED),
    (JOIN, "participant token", "meeting", "open", "participant", NOT_HASHED),
    (JOIN, "viewer token", "lecture", "open", "viewer", NOT_HASHED),
    (JOIN, "staff token", "meeting", "open", "refused role_not_allowed", NOT_HASHED),
    (JOIN, "admin token", "meeting", "open", "refused role_not_allowed", NOT_HASHED),
    (JOIN, "expired token", "meeting", "open", "refused bad_token", NOT_HASHED),
    (JOIN, "early token", "meeting", "open", "refused bad_token", NOT_HASHED),
    (JOIN, "wrong key token", "meeting", "open", "refused bad_token", NOT_HASHED),
    (JOIN, "tampered token", "meeting", "open", "refused bad_token", NOT_HASHED),
    (JOIN, "alg none token", "meeting", "open", "refused bad_token", NOT_HASHED),
    (JOIN, "revoked token", "meeting", "open", "refused bad_token", NOT_HASHED),
    (JOIN, "other room's token", "meeting", "open", "refused wrong_room", NOT_HASHED),
    (JOIN, "chair token", "meeting", "unknown", "refused unknown_room", NOT_HASHED),
    (JOIN, "chair token", "meeting", "closed", "refused room_not_open", NOT_HASHED),
    (JOIN, "participant token", "meeting", "full", "refused room_full", NOT_HASHED),
    (JOIN, "viewer token", "meeting", "full", "viewer", NOT_HASHED),
    # Signatures cannot be guessed: the throttle never refuses a valid token.
    (JOIN, "chair token", "meeting", "throttled", "chair", NOT_HASHED),
    (PUBLISH, "chair token", "lecture", "open", "chair", NOT_HASHED),
    (PUBLISH, "participant token", "lecture", "open", "participant", NOT_HASHED),
    (PUBLISH, "viewer token", "lecture", "open", "refused role_not_allowed", NOT_HASHED),
    (PUBLISH, "staff token", "lecture", "open", "refused role_not_allowed", NOT_HASHED),
    # A broken JWT is never tried as a password: its shape says what it is.
    (PUBLISH, "expired token", "lecture", "open", "refused bad_token", NOT_HASHED),
    (PUBLISH, "other room's token", "lecture", "open", "refused wrong_room", NOT_HASHED),
    (WATCH, "viewer token", "meeting", "open", "viewer", NOT_HASHED),
    (WATCH, "chair token", "meeting", "open", "refused role_not_allowed", NOT_HASHED),
    (WATCH, "participant token", "lecture", "open", "participant", NOT_HASHED),
    (WATCH, "viewer token", "lecture", "full", "viewer", NOT_HASHED),
    (WATCH, "admin token", "lecture", "open", "refused role_not_allowed", NOT_HASHED),
    (WATCH, "tampered token", "meeting", "open", "refused bad_token", NOT_HASHED),
    (WATCH, "alg none token", "lecture", "open", "refused bad_token", NOT_HASHED),
    (WATCH, "revoked token", "lecture", "open", "refused bad_token", NOT_HASHED),
    (WATCH, "early token", "lecture", "open", "refused bad_token", NOT_HASHED),
    (WATCH, "other room's token", "meeting", "open", "refused wrong_room", NOT_HASHED),
]


@pytest.mark.parametrize(
    ("entry", "kind", "room", "state", "outcome", "hashed"),
    TABLE,
    ids=[f"{e.value}-{k}-{r}-{s}" for e, k, r, s, *_ in TABLE],
)
def test_admission(
    entry: Entry, kind: str, room: str, state: str, outcome: str, hashed: bool
) -> None:
    assert judge(entry, kind, room, state) == (outcome, hashed)


NEEDED_TO_PUBLISH = "the room password or a publishing invite is needed"
BAD_SIGNATURE = "the access token's signature does not match its key"
BAD_ALGORITHM = "the access token is not signed with its key's algorithm"
NOT_FOR_ROOMS = "a staff token is for the APIs; it admits to no room"
NEEDED_TO_WATCH_A_MEETING = "a viewer invite's token (or a participant's session token)"
NEEDED_TO_WATCH_A_LECTURE = "a viewer password, room password, invite or session token"


def _refusal(entry: Entry, kind: str, room: str, state: str = "open") -> Refused:
    record = ROOMS[room]
    credential = _credential(kind, entry, record)
    attempt = Attempt(entry, record.id, credential, "192.0.2.1", T0)
    if state == "closed":
        record = replace(record, opens_at=T0 + 60)
    facts = Facts(record, default_capacity=16, seated=CAPACITY if state == "full" else 0)
    decision = decide(attempt, facts, SIGNER, TOKENS)
    if isinstance(decision, CheckRevocation):
        facts = replace(facts, revoked=decision.jti == REVOKED_JTI)
        decision = decide(attempt, facts, SIGNER, TOKENS)
    if isinstance(decision, CheckPassword):
        decision = decide(
            attempt, replace(facts, password=_verdict(record, decision.password)), SIGNER
        )
    assert isinstance(decision, Refused)
    return decision


@pytest.mark.parametrize(
    ("entry", "kind", "room", "state", "message"),
    [
        (JOIN, "none", "meeting", "open", "join needs a password or an invite"),
        (JOIN, "wrong password", "meeting", "open", "wrong room password"),
        (JOIN, "expired invite", "meeting", "open", "expired"),
        (JOIN, "other room's invite", "meeting", "open", "wrong_room"),
        (JOIN, "revoked invite", "meeting", "open", "revoked"),
        (JOIN, "forged invite", "meeting", "open", "bad_signature"),
        (JOIN, "room password", "meeting", "closed", "the room is not open at this time"),
        (JOIN, "room password", "meeting", "full", "the room holds 4 participants"),
        (JOIN, "expired token", "meeting", "open", "the access token has expired"),
        (JOIN, "early token", "meeting", "open", "the access token is not valid yet"),
        (JOIN, "wrong key token", "meeting", "open", BAD_SIGNATURE),
        (JOIN, "alg none token", "meeting", "open", BAD_ALGORITHM),
        (JOIN, "revoked token", "meeting", "open", "the access token has been revoked"),
        (JOIN, "other room's token", "meeting", "open", "the access token is for another room"),
        (JOIN, "staff token", "meeting", "open", NOT_FOR_ROOMS),
        (PUBLISH, "viewer token", "lecture", "open", "a viewer's access token does not publish"),
        (PUBLISH, "wrong password", "lecture", "open", NEEDED_TO_PUBLISH),
        (PUBLISH, "viewer invite", "lecture", "open", NEEDED_TO_PUBLISH),
        (WATCH, "wrong password", "meeting", "open", NEEDED_TO_WATCH_A_MEETING),
        (WATCH, "wrong password", "lecture", "open", NEEDED_TO_WATCH_A_LECTURE),
        (
            WATCH,
            "chair invite",
            "meeting",
            "open",
            "a meeting is watched only with a viewer invite, whose holder its participants see; "
            "the room password and participant or chair invites admit people who join it "
            '(ask an administrator for POST /api/rooms/cardio-1/invites {"role": "viewer"})',
        ),
    ],
)  # fmt: skip
def test_refusals_say_what_the_client_is_told(
    entry: Entry, kind: str, room: str, state: str, message: str
) -> None:
    refusal = _refusal(entry, kind, room, state)
    assert refusal.message == message
    assert refusal.retry_after is None


def test_an_unknown_room_is_named_and_a_locked_out_address_told_when_to_retry() -> None:
    attempt = Attempt(JOIN, "no-such-room", Password(ROOM_PASSWORD), "192.0.2.1", T0)
    unknown = decide(attempt, Facts(None, default_capacity=16), SIGNER)
    assert isinstance(unknown, Refused)
    assert (unknown.code, unknown.message) == ("unknown_room", "no room 'no-such-room'")
    locked = decide(attempt, Facts(None, default_capacity=16, lockout=42.5), SIGNER)
    assert isinstance(locked, Refused)
    assert (locked.code, locked.message, locked.retry_after) == (
        "rate_limited",
        "too many failed attempts",
        42.5,
    )


def test_an_invite_is_judged_at_the_attempts_time() -> None:
    token = SIGNER.issue(MEETING.id, "chair", 60, now=T0)
    facts = Facts(MEETING, default_capacity=16)
    within = decide(
        Attempt(JOIN, MEETING.id, InviteToken(token), "192.0.2.1", T0 + 59), facts, SIGNER
    )
    after = decide(
        Attempt(JOIN, MEETING.id, InviteToken(token), "192.0.2.1", T0 + 60), facts, SIGNER
    )
    assert isinstance(within, Admitted) and within.role == "chair"
    assert isinstance(after, Refused) and after.code == "bad_invite"


def test_credentials_never_show_in_a_repr() -> None:
    for credential in (Password("s3cret"), InviteToken("s3cret"), Bearer("s3cret")):
        assert "s3cret" not in repr(credential)
    assert "s3cret" not in repr(CheckPassword("s3cret"))


def test_an_access_token_names_who_enters() -> None:
    token = _access_token("participant token", MEETING)
    attempt = Attempt(JOIN, MEETING.id, PlatformToken(token), "192.0.2.1", T0)
    first = decide(attempt, Facts(MEETING, default_capacity=16), SIGNER, TOKENS)
    assert isinstance(first, CheckRevocation) and first.jti  # every minted token has an id
    facts = Facts(MEETING, default_capacity=16, revoked=False)
    admitted = decide(attempt, facts, SIGNER, TOKENS)
    assert isinstance(admitted, Admitted)
    assert (admitted.role, admitted.name, admitted.own_session) == ("participant", "Dr Wang", False)
    # Without the API key configured, the same token admits nobody.
    refused = decide(attempt, facts, SIGNER)
    assert isinstance(refused, Refused) and refused.code == "bad_token"
