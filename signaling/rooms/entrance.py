"""The way into a room: gathers what admission needs, and carries out its decision.

:func:`mcu.signaling.rooms.admission.decide` is pure; this is its thin async shell. It looks
the room up, counts the live room's seats, asks the login throttle, hashes passwords off the
event loop, keeps the throttle's books, looks access tokens up in the deny list, waits the
throttle's delay before a refusal goes out, and logs refusals. Every entry point (the
WebSocket join, WHIP, WHEP, the home worker judging a viewer for another worker)
goes through :meth:`Entrance.admit`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from typing import NoReturn, Protocol

from mcu.crypto.accesstokens import AccessTokens
from mcu.crypto.passwords import verify_password
from mcu.crypto.tokens import InviteSigner, Role
from mcu.infra.auditlog import AuditTrail
from mcu.signaling.rooms.admission import (
    Admitted,
    Attempt,
    Bearer,
    CheckPassword,
    CheckRevocation,
    Credential,
    Decision,
    Entry,
    Facts,
    InviteToken,
    Password,
    PasswordCheck,
    Refused,
    decide,
    missing_room,
)
from mcu.signaling.rooms.store import RoomRecord
from mcu.signaling.rooms.throttle import LoginThrottle

__all__ = [
    "MAX_PASSWORD_CHARS",
    "DenyList",
    "Entrance",
    "LiveRooms",
    "RoomLookup",
    "unknown_room",
]

logger = logging.getLogger(__name__)

MAX_PASSWORD_CHARS = 256
"Longest room password (the admin API's limit): anything longer is no password of a room."


class RoomLookup(Protocol):
    """Where rooms are defined (the room store)."""

    async def get(self, room_id: str) -> RoomRecord | None:
        """The room's record, None if there is no such room."""
        ...


class DenyList(Protocol):
    """Where revoked access tokens are listed (the room store)."""

    async def token_revoked(self, jti: str, now: float) -> bool:
        """Whether the access token ``jti`` was revoked (and its entry has not expired)."""
        ...


class _NothingRevoked:
    async def token_revoked(self, jti: str, now: float) -> bool:
        return False


class _Seated(Protocol):
    @property
    def role(self) -> Role: ...


class LiveRooms(Protocol):
    """Who is in the rooms of this process now."""

    def participant_count(self, room_id: str) -> int:
        """People seen and heard in a live room (0 if it is not live)."""
        ...

    def participant_by_token(self, room_id: str, token: str) -> tuple[object, _Seated] | None:
        """The live participant a session token belongs to."""
        ...


_CheckKey = tuple[str, str, str | None, bytes]


class Entrance:
    """Admits attempts to enter rooms: :func:`~mcu.signaling.rooms.admission.decide` with its
    facts gathered and its password checks run."""

    def __init__(
        self,
        store: RoomLookup,
        signer: InviteSigner,
        throttle: LoginThrottle,
        rooms: LiveRooms,
        default_capacity: int,
        clock: Callable[[], float] = time.time,
        audit: AuditTrail | None = None,
        *,
        tokens: AccessTokens | None = None,
        deny_list: DenyList | None = None,
    ) -> None:
        self._store = store
        self._signer = signer
        self._tokens = tokens or AccessTokens()
        self._deny_list: DenyList = deny_list or _NothingRevoked()
        self._throttle = throttle
        self._rooms = rooms
        self._default_capacity = default_capacity
        self._clock = clock
        self._audit = audit
        self._checks_running: dict[_CheckKey, asyncio.Future[Role | None]] = {}
        "Password checks being hashed now, by room, its stored hashes and the password's digest."

    async def admit(
        self,
        entry: Entry,
        room_id: str,
        credential: Credential,
        address: str,
        who: str | None = None,
    ) -> Admitted:
        """Let the attempt in, or raise :class:`Refused` (after the throttle's delay).

        ``who`` is the name the attempt gave, for the audit trail's record of a refusal."""
        attempt = Attempt(entry, room_id, credential, address, self._clock())
        record = await self._store.get(room_id)
        decision = self._decide(attempt, self._facts(attempt, record))
        if isinstance(decision, CheckRevocation):
            revoked = await self._deny_list.token_revoked(decision.jti, attempt.now)
            decision = self._decide(attempt, self._facts(attempt, record, revoked=revoked))
        if isinstance(decision, CheckPassword):
            assert record is not None  # no password is checked for a room that does not exist
            facts = await self._check_password(attempt, record, decision.password)
            decision = self._decide(attempt, facts)
        if isinstance(decision, Refused):
            await self._refuse(attempt, decision, who)
        if not isinstance(decision, Admitted):
            raise AssertionError("a password's verdict always decides")
        return decision

    async def room(
        self, entry: Entry, room_id: str, credential: Credential, address: str
    ) -> RoomRecord:
        """The room an attempt names, for a worker that has the room's home judge the
        credential: refused here (and counted against the address) exactly as :meth:`admit`
        would refuse it when there is no such room."""
        attempt = Attempt(entry, room_id, credential, address, self._clock())
        record = await self._store.get(room_id)
        if record is not None:
            return record
        decision = self._decide(attempt, self._facts(attempt, None))
        assert isinstance(decision, Refused)  # nothing enters a room that does not exist
        await self._refuse(attempt, decision)

    def _decide(self, attempt: Attempt, facts: Facts) -> Decision:
        return decide(attempt, facts, self._signer, self._tokens)

    def _facts(
        self,
        attempt: Attempt,
        record: RoomRecord | None,
        *,
        lockout: float | None = None,
        password: PasswordCheck | None = None,
        revoked: bool | None = None,
    ) -> Facts:
        if record is None:
            lockout = self._throttle.address_retry_after(attempt.address, attempt.now)
            return Facts(None, self._default_capacity, lockout=lockout)
        session_role = None
        if isinstance(attempt.credential, Bearer):
            owner = self._rooms.participant_by_token(record.id, attempt.credential.token)
            session_role = None if owner is None else owner[1].role
        return Facts(
            record,
            self._default_capacity,
            seated=self._rooms.participant_count(record.id),
            session_role=session_role,
            lockout=lockout,
            password=password,
            revoked=revoked,
        )

    async def _check_password(self, attempt: Attempt, record: RoomRecord, password: str) -> Facts:
        """The facts again, with the throttle's lockout or the password's verdict.

        The attempt counts against the address in this room, the address and the room from
        the moment it starts; a wrong one is answered after the throttle's delay. An attempt
        with the same password as a check already running waits for that check's verdict
        instead of hashing again (a lesson's sites all send its viewer password at once).
        """
        throttle, address = self._throttle, attempt.address
        key = (
            record.id,
            record.password_hash,
            record.viewer_password_hash,
            hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest(),
        )
        running = self._checks_running.get(key)
        if running is not None:
            retry = throttle.locked(address, record.id, self._clock())
            if retry is not None:
                return self._facts(attempt, record, lockout=retry)
            role = await asyncio.shield(running)
            reserved = False
        else:
            retry = throttle.begin(address, record.id, self._clock())
            if retry is not None:
                return self._facts(attempt, record, lockout=retry)
            future: asyncio.Future[Role | None] = asyncio.get_running_loop().create_future()
            self._checks_running[key] = future
            try:
                role = await _password_grants(record, password)
            except BaseException:
                throttle.abandon(address, record.id)  # cancelled mid-check: no verdict to record
                future.cancel()
                raise
            finally:
                self._checks_running.pop(key, None)
            future.set_result(role)
            reserved = True
        if role is None:
            delay = throttle.failed(address, record.id, self._clock(), reserved=reserved)
            if delay > 0:
                await asyncio.sleep(delay)
        else:
            throttle.succeeded(address, record.id, reserved=reserved)
        # Counted again after the hash: others may have taken the last seat meanwhile.
        return self._facts(attempt, record, password=PasswordCheck(role))

    async def _refuse(self, attempt: Attempt, refusal: Refused, who: str | None = None) -> NoReturn:
        logger.info(
            "room %s: %s refused from %s (%s)",
            attempt.room_id,
            attempt.entry.value,
            attempt.address,
            refusal.code,
        )
        if self._audit is not None:
            # What was presented, never the secret itself.
            self._audit.record(
                "admission.locked_out" if refusal.code == "rate_limited" else "admission.refused",
                actor=who or "anonymous",
                room=attempt.room_id,
                address=attempt.address,
                details={
                    "entry": attempt.entry.value,
                    "code": refusal.code,
                    "credential": _kind_of(attempt.credential),
                },
            )
        if refusal.code == "unknown_room":
            await _count_unknown_room(self._throttle, attempt.address, self._clock())
        raise refusal


def _kind_of(credential: Credential) -> str:
    """What kind of credential an attempt presented, for the audit trail."""
    if isinstance(credential, Password):
        return "password"
    if isinstance(credential, InviteToken):
        return "invite"
    if isinstance(credential, Bearer):
        return "bearer"
    return "none"


async def _password_grants(record: RoomRecord, password: str) -> Role | None:
    """The role a room's password admits with (the viewer password: viewer), None if wrong."""
    if len(password) > MAX_PASSWORD_CHARS:
        return None
    if await verify_password(record.password_hash, password):
        return "participant"
    if record.viewer_password_hash is not None and await verify_password(
        record.viewer_password_hash, password
    ):
        return "viewer"
    return None


async def _count_unknown_room(throttle: LoginThrottle, address: str, now: float) -> None:
    """Count a room id that names no room against the address, and wait its delay."""
    delay = throttle.address_failed(address, now)
    if delay > 0:
        await asyncio.sleep(delay)


async def unknown_room(throttle: LoginThrottle, room_id: str, address: str) -> NoReturn:
    """Refuse a lookup of a room that does not exist, counted against the address (the join
    page's room and invite lookups, which admit nobody, use it)."""
    now = time.time()
    refusal = missing_room(room_id, throttle.address_retry_after(address, now))
    if refusal.code == "unknown_room":
        await _count_unknown_room(throttle, address, now)
    raise refusal
