"""Password checks and unknown rooms: the I/O half of admission (hashing, the throttle's books)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from typing import TYPE_CHECKING, NoReturn

from mcu.crypto.passwords import verify_password
from mcu.crypto.tokens import InviteSigner, Role
from mcu.signaling.rooms.admission import Admission, Refused, invite_role
from mcu.signaling.rooms.store import RoomRecord
from mcu.signaling.rooms.throttle import LoginThrottle

if TYPE_CHECKING:
    from mcu.signaling.rooms.session import Rooms

__all__ = [
    "MAX_PASSWORD_CHARS",
    "admit",
    "check_password",
    "credential_role",
    "unknown_room",
]

MAX_PASSWORD_CHARS = 256
"Longest room password (the admin API's limit): anything longer is no password of a room."


async def password_grants(record: RoomRecord, password: str) -> Role | None:
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


_checks_running: dict[tuple[str, str, str | None, bytes], asyncio.Future[Role | None]] = {}
"Password checks being hashed now, by room, its stored hashes and the password's digest."


async def check_password(
    throttle: LoginThrottle, record: RoomRecord, password: str, address: str
) -> Role:
    """The role ``password`` admits to ``record``'s room, or :class:`Refused`.

    The attempt counts against the address in this room, the address and the room from the
    moment it starts; a wrong one is answered after the throttle's delay. An attempt with the
    same password as a check already running waits for that check's verdict instead of hashing
    again (a lesson's sites all send its viewer password at once).
    """
    key = (
        record.id,
        record.password_hash,
        record.viewer_password_hash,
        hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest(),
    )
    running = _checks_running.get(key)
    if running is not None:
        retry = throttle.locked(address, record.id, time.time())
        if retry is not None:
            raise Refused("rate_limited", "too many failed attempts", retry_after=retry)
        role = await asyncio.shield(running)
        return await _verdict(throttle, record, address, role, reserved=False)
    retry = throttle.begin(address, record.id, time.time())
    if retry is not None:
        raise Refused("rate_limited", "too many failed attempts", retry_after=retry)
    future: asyncio.Future[Role | None] = asyncio.get_running_loop().create_future()
    _checks_running[key] = future
    try:
        role = await password_grants(record, password)
    except BaseException:
        throttle.abandon(address, record.id)  # cancelled mid-check: no verdict to record
        future.cancel()
        raise
    finally:
        _checks_running.pop(key, None)
    future.set_result(role)
    return await _verdict(throttle, record, address, role, reserved=True)


async def _verdict(
    throttle: LoginThrottle, record: RoomRecord, address: str, role: Role | None, *, reserved: bool
) -> Role:
    if role is None:
        delay = throttle.failed(address, record.id, time.time(), reserved=reserved)
        if delay > 0:
            await asyncio.sleep(delay)
        raise Refused("wrong_password", "wrong room password")
    throttle.succeeded(address, record.id, reserved=reserved)
    return role


async def credential_role(
    signer: InviteSigner, throttle: LoginThrottle, record: RoomRecord, token: str, address: str
) -> Role:
    """The role a bearer credential (an invite, else a room or viewer password) admits."""
    with contextlib.suppress(Refused):
        return invite_role(signer, record, token)
    return await check_password(throttle, record, token, address)


async def unknown_room(throttle: LoginThrottle, room_id: str, address: str) -> NoReturn:
    """Refuse a credential for a room that does not exist; it counts against the address."""
    now = time.time()
    retry = throttle.address_retry_after(address, now)
    if retry is not None:
        raise Refused("rate_limited", "too many failed attempts", retry_after=retry)
    delay = throttle.address_failed(address, now)
    if delay > 0:
        await asyncio.sleep(delay)
    raise Refused("unknown_room", f"no room {room_id!r}")


async def admit(
    rooms: Rooms,
    signer: InviteSigner,
    throttle: LoginThrottle,
    record: RoomRecord,
    token: str,
    address: str,
) -> Admission:
    """Judge a WHEP bearer credential at the room's home: a live participant's session token,
    else an invite or a password (throttled). Never raises :class:`Refused`."""
    if rooms.participant_by_token(record.id, token) is not None:
        return Admission(own=True)
    try:
        return Admission(role=await credential_role(signer, throttle, record, token, address))
    except Refused as exc:
        return Admission(refused=exc)
