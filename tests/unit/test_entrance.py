"""The shell around admission: real Argon2id hashes and the real login throttle; the room store
and the live rooms are small in-memory stand-ins."""

from __future__ import annotations

import asyncio

import pytest

from mcu.crypto.passwords import hash_password_sync
from mcu.crypto.tokens import InviteSigner, Role
from mcu.signaling.rooms.admission import Bearer, Entry, InviteToken, Password, Refused
from mcu.signaling.rooms.entrance import Entrance
from mcu.signaling.rooms.store import RoomRecord
from mcu.signaling.rooms.throttle import ADDRESS, ADDRESS_IN_ROOM, LoginThrottle

T0 = 1_700_000_000.0
SIGNER = InviteSigner(b"entrance-test-key-0123456789abc")
HOSPITAL = "192.0.2.1"
LECTURE = RoomRecord(
    "stroke-4",
    "Stroke care",
    hash_password_sync("lecturers-pass"),
    T0 - 3600,
    None,
    None,
    2,
    kind="lecture",
    viewer_password_hash=hash_password_sync("audience-pass"),
)


class Store:
    def __init__(self, *records: RoomRecord) -> None:
        self.records = {r.id: r for r in records}

    async def get(self, room_id: str) -> RoomRecord | None:
        return self.records.get(room_id)


class Seat:
    def __init__(self, role: Role) -> None:
        self.role = role


class Live:
    def __init__(self) -> None:
        self.seated = 0
        self.tokens: dict[str, Role] = {}

    def participant_count(self, room_id: str) -> int:
        return self.seated

    def participant_by_token(self, room_id: str, token: str) -> tuple[object, Seat] | None:
        role = self.tokens.get(token)
        return None if role is None else (object(), Seat(role))


def entrance(throttle: LoginThrottle | None = None, live: Live | None = None) -> Entrance:
    return Entrance(
        Store(LECTURE),
        SIGNER,
        LoginThrottle() if throttle is None else throttle,
        Live() if live is None else live,
        default_capacity=16,
        clock=lambda: T0,
    )


async def test_a_lessons_sites_sending_one_password_at_once_are_all_admitted() -> None:
    # One address may have 10 checks in flight in a room; identical passwords share one check,
    # so 40 sites behind one NAT joining at once are not refused as a burst.
    gate = entrance()
    admitted = await asyncio.gather(
        *(
            gate.admit(Entry.JOIN, "stroke-4", Password("audience-pass"), HOSPITAL)
            for _ in range(40)
        )
    )
    assert {a.role for a in admitted} == {"viewer"}


async def test_a_locked_out_address_is_refused_before_hashing_but_invites_still_admit() -> None:
    throttle = LoginThrottle()
    for _ in range(ADDRESS_IN_ROOM.threshold):
        assert throttle.begin(HOSPITAL, "stroke-4", T0) is None
        throttle.failed(HOSPITAL, "stroke-4", T0)
    gate = entrance(throttle)
    with pytest.raises(Refused) as refused:
        await gate.admit(Entry.PUBLISH, "stroke-4", Bearer("lecturers-pass"), HOSPITAL)
    assert refused.value.code == "rate_limited"
    assert refused.value.retry_after == ADDRESS_IN_ROOM.lock_seconds
    invite = SIGNER.issue("stroke-4", "chair", 600, now=T0)
    admitted = await gate.admit(Entry.PUBLISH, "stroke-4", Bearer(invite), HOSPITAL)
    assert admitted.role == "chair"


async def test_an_unknown_room_counts_against_the_address() -> None:
    throttle = LoginThrottle()
    gate = entrance(throttle)
    with pytest.raises(Refused) as refused:
        await gate.admit(Entry.WATCH, "no-such-room", Bearer("anything"), HOSPITAL)
    assert (refused.value.code, refused.value.message) == ("unknown_room", "no room 'no-such-room'")
    # The refusal was the first of the address's failures: the rest of the scope locks it.
    for _ in range(ADDRESS.threshold - 2):
        throttle.address_failed(HOSPITAL, T0)
    assert throttle.address_retry_after(HOSPITAL, T0) is None
    throttle.address_failed(HOSPITAL, T0)
    assert throttle.address_retry_after(HOSPITAL, T0) == ADDRESS.lock_seconds
    # A worker relaying to the room's home refuses an unknown room the same way.
    with pytest.raises(Refused) as locked:
        await gate.room(Entry.WATCH, "no-such-room", Bearer("anything"), HOSPITAL)
    assert locked.value.code == "rate_limited"


async def test_seats_are_counted_after_the_password_is_checked() -> None:
    live = Live()
    gate = entrance(live=live)
    joining = asyncio.create_task(
        gate.admit(Entry.JOIN, "stroke-4", Password("lecturers-pass"), HOSPITAL)
    )
    await asyncio.sleep(0)  # the check is hashing in the executor
    live.seated = 2  # others took the last seats meanwhile
    with pytest.raises(Refused) as refused:
        await joining
    assert refused.value.code == "room_full"


async def test_a_participants_session_token_watches_as_that_participant() -> None:
    live = Live()
    live.tokens["session-token-of-dr-li"] = "chair"
    admitted = await entrance(live=live).admit(
        Entry.WATCH, "stroke-4", Bearer("session-token-of-dr-li"), HOSPITAL
    )
    assert (admitted.role, admitted.own_session) == ("chair", True)


async def test_a_join_invite_for_another_room_is_a_bad_invite() -> None:
    invite = SIGNER.issue("cardio-1", "chair", 600, now=T0)
    with pytest.raises(Refused) as refused:
        await entrance().admit(Entry.JOIN, "stroke-4", InviteToken(invite), HOSPITAL)
    assert (refused.value.code, refused.value.message) == ("bad_invite", "wrong_room")
