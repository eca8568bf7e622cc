"""Revoking access tokens: the deny list in the room database (kept across restarts, entries
dropped once their token has expired) and the entrance consulting it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mcu.crypto.accesstokens import AccessTokens, ApiKey, issue_access_token
from mcu.crypto.passwords import hash_password_sync
from mcu.crypto.tokens import InviteSigner
from mcu.signaling.rooms.admission import Bearer, Entry, PlatformToken, Refused
from mcu.signaling.rooms.entrance import Entrance
from mcu.signaling.rooms.store import RoomRecord, RoomStore
from mcu.signaling.rooms.throttle import LoginThrottle

T0 = 1_700_000_000.0
KEY = ApiKey("his", secret=b"deny-list-test-platform-key-01234567")


class Nobody:
    def participant_count(self, room_id: str) -> int:
        return 0

    def participant_by_token(self, room_id: str, token: str) -> None:
        return None


async def test_revocations_survive_a_restart_and_expire_with_the_token(tmp_path: Path) -> None:
    path = tmp_path / "mcu.sqlite3"
    store = await RoomStore.open(path)
    try:
        await store.revoke_token("t-1", T0 + 600, now=T0)
        await store.revoke_token("t-1", T0 + 60, now=T0)  # a shorter entry lifts nothing
        await store.revoke_token("t-2", T0 + 60, now=T0)
        assert await store.token_revoked("t-1", T0)
        assert not await store.token_revoked("t-3", T0)
    finally:
        await store.close()
    store = await RoomStore.open(path)
    try:
        assert await store.token_revoked("t-1", T0 + 599)
        assert not await store.token_revoked("t-1", T0 + 600)
        assert not await store.token_revoked("t-2", T0 + 60)
        await store.revoke_token("t-4", T0 + 900, now=T0 + 700)  # sweeps what has expired
    finally:
        await store.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT jti FROM revoked_tokens").fetchall() == [("t-4",)]
    db.close()


async def test_a_version_3_database_gains_the_deny_list(tmp_path: Path) -> None:
    path = tmp_path / "mcu.sqlite3"
    store = await RoomStore.open(path)
    await store.close()
    db = sqlite3.connect(path)
    # Back to version 3: without the deny list (4) and the e2ee flag (5).
    db.execute("DROP TABLE revoked_tokens")
    db.execute("ALTER TABLE rooms DROP COLUMN e2ee")
    db.execute("DELETE FROM schema_version WHERE version >= 4")
    db.commit()
    db.close()
    store = await RoomStore.open(path)
    try:
        await store.revoke_token("t-1", T0 + 60, now=T0)
        assert await store.token_revoked("t-1", T0)
    finally:
        await store.close()


async def test_the_entrance_refuses_a_revoked_token(tmp_path: Path) -> None:
    store = await RoomStore.open(tmp_path / "mcu.sqlite3")
    try:
        room = RoomRecord("cardio-1", "Cardiology", hash_password_sync("room-pass"), T0 - 60,
                          None, None, 4)  # fmt: skip
        await store.create(room)
        entrance = Entrance(
            store,
            InviteSigner(b"entrance-deny-list-key-0123456789"),
            LoginThrottle(),
            Nobody(),
            default_capacity=16,
            clock=lambda: T0,
            tokens=AccessTokens([KEY]),
            deny_list=store,
        )

        def token(jti: str) -> str:
            return issue_access_token(
                KEY, subject="u-1", role="chair", room="cardio-1", name="Dr Li",
                ttl_seconds=600, now=T0, jti=jti,
            )  # fmt: skip

        admitted = await entrance.admit(Entry.JOIN, "cardio-1", PlatformToken(token("a")), "x")
        assert (admitted.role, admitted.name) == ("chair", "Dr Li")
        await store.revoke_token("a", T0 + 600, now=T0)
        for credential in (PlatformToken(token("a")), Bearer(token("a"))):
            with pytest.raises(Refused) as refused:
                await entrance.admit(Entry.PUBLISH, "cardio-1", credential, "x")
            assert (refused.value.code, refused.value.message) == (
                "bad_token",
                "the access token has been revoked",
            )
        assert (await entrance.admit(Entry.PUBLISH, "cardio-1", Bearer(token("b")), "x")).role == (
            "chair"
        )
    finally:
        await store.close()
