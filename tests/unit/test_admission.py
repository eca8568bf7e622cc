"""Admission as a table: every way in (join, WHIP, WHEP) x what it presents x the room's state,
decided by the pure function on an explicit clock, the password's verdict given as the shell
would find it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mcu.crypto.tokens import InviteSigner
from mcu.signaling.rooms.admission import (
    Admitted,
    Attempt,
    Bearer,
    CheckPassword,
    Credential,
    Entry,
    Facts,
    InviteToken,
    Password,
    PasswordCheck,
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
    decision = decide(attempt, facts, SIGNER)
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
        decision = decide(attempt, facts, SIGNER)
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
NEEDED_TO_WATCH_A_MEETING = "a viewer invite's token (or a participant's session token)"
NEEDED_TO_WATCH_A_LECTURE = "a viewer password, room password, invite or session token"


def _refusal(entry: Entry, kind: str, room: str, state: str = "open") -> Refused:
    record = ROOMS[room]
    credential = _credential(kind, entry, record)
    attempt = Attempt(entry, record.id, credential, "192.0.2.1", T0)
    if state == "closed":
        record = replace(record, opens_at=T0 + 60)
    facts = Facts(record, default_capacity=16, seated=CAPACITY if state == "full" else 0)
    decision = decide(attempt, facts, SIGNER)
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
