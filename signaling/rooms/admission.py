"""Who may enter a room, and as what: one pure decision for every way in.

Every entry point asks :func:`decide`: the WebSocket join (:attr:`Entry.JOIN`), WHIP publishing
(:attr:`Entry.PUBLISH`) and WHEP watching (:attr:`Entry.WATCH`, also when a room's home worker
judges a viewer for another worker). The answer is :class:`Admitted`, with the role, or
:class:`Refused`, a domain error whose ``code`` each endpoint turns into its own wire error and
whose ``message`` is written for the client. The rules, in the order they apply:

1. a credential is needed (``no_credential``);
2. the room must exist (``unknown_room``; ``rate_limited`` while the address is locked out);
3. the credential must admit somebody. A WHEP bearer token that is a live participant's session
   token admits that participant's page (it is in the room already). The platform's access
   token (:class:`PlatformToken`, or an HTTP bearer token shaped as a JWT) admits the role it
   names when a configured key signed it, it is valid now (``bad_token``, its message saying
   why: expired, revoked, ...), it names this room (``wrong_room``) and its role enters rooms
   (``role_not_allowed``: staff and admin tokens are for the APIs). Else a valid invite admits
   the role it names; a broken one is ``bad_invite`` when it came as an invite, and is tried as a
   password when it came as an HTTP bearer token. A password admits as ``participant`` (the
   room password) or ``viewer`` (a lecture's viewer password), checked under the login
   throttle (``rate_limited``, ``wrong_password``);
4. the entry point must take that role: WHIP publishes, so a viewer's credential does not
   admit (``not_a_publisher``); a meeting is watched only with a viewer invite, because its
   participants must know who sees them (``viewer_invite_required``); a lecture is watched
   with any credential of the room. An access token with a role the entry point does not take
   is ``role_not_allowed`` (a viewer's to WHIP, any but a viewer's to watch a meeting);
5. the room must be open (``room_not_open``);
6. a join or a publisher needs a seat: viewers are counted, not seated (``room_full``).

Why the decision takes the password's *verdict* rather than the password's hash: checking a
password is an Argon2id hash (~20 ms of a core, in an executor), and whether to run it at all is
the login throttle's call, whose books must be kept in a set order around it (reserve the
attempt, hash, record the verdict). So with a password the decision is asked twice. First
without a verdict: it answers :class:`CheckPassword` unless another rule decides first. Then
:class:`~mcu.signaling.rooms.entrance.Entrance`, the thin async shell that looks the room up,
counts the live room, keeps the throttle's books and hashes off the loop, asks again with the
throttle's answer (:attr:`Facts.lockout`) and the hash's verdict (:attr:`Facts.password`).
Everything that is no I/O (which credential wins, which role each entry point takes, open
hours, capacity, every refusal's code and message) is here, time passed in. An access token
with a ``jti`` is asked about the same way: :class:`CheckRevocation` first, then the deny
list's answer as :attr:`Facts.revoked`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import cast

from mcu.crypto.accesstokens import (
    ROOM_ROLES,
    AccessGrant,
    AccessTokens,
    InvalidAccessToken,
    looks_like_jwt,
)
from mcu.crypto.tokens import InvalidInvite, InviteSigner, Role
from mcu.signaling.rooms.store import RoomKind, RoomRecord

__all__ = [
    "Admitted",
    "Attempt",
    "Bearer",
    "CheckPassword",
    "CheckRevocation",
    "Credential",
    "Decision",
    "Entry",
    "Facts",
    "InviteToken",
    "Password",
    "PasswordCheck",
    "PlatformToken",
    "Refused",
    "credential_needed",
    "decide",
    "missing_room",
]


class Entry(enum.Enum):
    """The way into a room an attempt takes."""

    JOIN = "join"
    "The WebSocket join: a participant's, chair's or viewer's page."
    PUBLISH = "publish"
    "WHIP: a broadcasting tool publishes as a participant without a WebSocket."
    WATCH = "watch"
    "WHEP: a player watches the room's stage."


@dataclass(frozen=True)
class Password:
    """A room or viewer password, as typed."""

    text: str = field(repr=False)


@dataclass(frozen=True)
class InviteToken:
    """A signed invite, from an invite link."""

    token: str = field(repr=False)


@dataclass(frozen=True)
class PlatformToken:
    """An access token the hospital platform signed (a JWT): ``?token=`` on the join page, the
    join frame's ``token``."""

    token: str = field(repr=False)


@dataclass(frozen=True)
class Bearer:
    """An HTTP bearer token: a live participant's session token (counts for WHEP only), a
    platform access token (when shaped as a JWT), a signed invite, or else a password."""

    token: str = field(repr=False)


Credential = Password | InviteToken | PlatformToken | Bearer | None
"What an attempt presents; None when it presents nothing."


@dataclass(frozen=True)
class Attempt:
    """Somebody asking to enter a room."""

    entry: Entry
    "Which way in."
    room_id: str
    "The room asked for, as the client named it."
    credential: Credential
    "What the client presents."
    address: str
    "The client's address: the login throttle's key, and logged with a refusal."
    now: float
    "Unix time of the attempt: open hours and invite expiry are judged at it."


@dataclass(frozen=True)
class PasswordCheck:
    """What hashing a password found."""

    role: Role | None
    "The role it admits as (room password: participant; viewer password: viewer); None: wrong."


@dataclass(frozen=True)
class Facts:
    """What the decision needs to know beyond the attempt, gathered by its caller."""

    record: RoomRecord | None
    "The room as stored; None if there is no such room."
    default_capacity: int
    "Seats of a room whose record sets no ``max_participants``."
    seated: int = 0
    "People seen and heard in the live room now (its viewers are not seated)."
    session_role: Role | None = None
    "The role of the live participant whose session token the bearer token is; None if none's."
    lockout: float | None = None
    """Seconds the login throttle still refuses this attempt for: with no such room, the
    address's lockout; once a password check was asked for, the throttle's answer to it.
    None: the throttle lets it through (or was not asked)."""
    password: PasswordCheck | None = None
    "The password's verdict once it was checked; None before."
    revoked: bool | None = None
    "Whether the access token's ``jti`` is on the deny list, once looked up; None before."


@dataclass(frozen=True)
class Admitted:
    """The attempt may enter."""

    record: RoomRecord
    "The room it enters."
    role: Role
    "As what."
    own_session: bool = False
    """The credential is a live participant's session token: that participant's page watches,
    and is already counted (and in a meeting named) as the participant it is."""
    name: str | None = None
    "The display name the credential gives (an access token's ``name``); None: the client's."


@dataclass(frozen=True)
class CheckPassword:
    """The verdict hinges on a password: ask the throttle, hash it, and decide again."""

    password: str = field(repr=False)


@dataclass(frozen=True)
class CheckRevocation:
    """The verdict hinges on the deny list: look the access token's ``jti`` up, and decide
    again."""

    jti: str
    "The token's id."


class Refused(Exception):
    """The attempt may not enter. ``code`` says why: ``no_credential``, ``unknown_room``,
    ``rate_limited`` (with ``retry_after`` seconds), ``wrong_password``, ``bad_invite``,
    ``bad_token``, ``wrong_room``, ``role_not_allowed``, ``not_a_publisher``,
    ``viewer_invite_required``, ``room_not_open`` or ``room_full``; ``message`` says it to the
    client."""

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


Decision = Admitted | CheckPassword | CheckRevocation | Refused
"What :func:`decide` answers."

NO_ACCESS_TOKENS = AccessTokens()
"No API key configured: every access token is refused."


def decide(
    attempt: Attempt,
    facts: Facts,
    signer: InviteSigner,
    tokens: AccessTokens = NO_ACCESS_TOKENS,
) -> Decision:
    """Whether ``attempt`` enters, and as what, given ``facts`` (see the module's rules).

    ``signer`` checks invites (an HMAC, at ``attempt.now``), ``tokens`` the platform's access
    tokens. Never :class:`CheckPassword` once ``facts`` carries a lockout or a password's
    verdict, nor :class:`CheckRevocation` once it carries the deny list's.
    """
    entry, credential, record = attempt.entry, attempt.credential, facts.record
    if credential is None:
        return Refused(
            "no_credential", credential_needed(entry, None if record is None else record.kind)
        )
    if record is None:
        return missing_room(attempt.room_id, facts.lockout)
    token = _access_token(credential)
    if token is not None:
        grant = _token_grant(attempt, token, facts, record, tokens)
        if not isinstance(grant, AccessGrant):
            return grant
        refusal = _token_refusal(entry, record.kind, grant)
        if refusal is not None:
            return refusal
        role = cast(Role, grant.role)  # a room's role: _token_grant refused the others
        return _seat(attempt, facts, record, role, False, grant.name)
    assert not isinstance(credential, PlatformToken)  # judged above, whatever it holds
    granted = _credential_role(attempt, credential, facts, record, signer)
    if not isinstance(granted, tuple):
        return granted
    role, own = granted
    if not own and entry is Entry.PUBLISH and role == "viewer":
        return Refused("not_a_publisher", credential_needed(entry, record.kind))
    # The room password and the other invites admit people a meeting's participants see:
    # nobody may watch a consultation unseen.
    if not own and entry is Entry.WATCH and record.kind != "lecture" and role != "viewer":
        return Refused(
            "viewer_invite_required",
            "a meeting is watched only with a viewer invite, whose holder its participants see; "
            "the room password and participant or chair invites admit people who join it "
            f"(ask an administrator for POST /api/rooms/{record.id}/invites "
            '{"role": "viewer"})',
        )
    return _seat(attempt, facts, record, role, own, None)


def _seat(
    attempt: Attempt,
    facts: Facts,
    record: RoomRecord,
    role: Role,
    own: bool,
    name: str | None,
) -> Admitted | Refused:
    """Rules 5 and 6: open hours and capacity."""
    entry = attempt.entry
    if not record.is_open(attempt.now):
        return Refused("room_not_open", "the room is not open at this time")
    # Viewers are counted, not seated: the limit is on people seen and heard.
    limit = record.max_participants or facts.default_capacity
    if entry is not Entry.WATCH and role != "viewer" and facts.seated >= limit:
        return Refused("room_full", f"the room holds {limit} participants")
    return Admitted(record, role, own_session=own, name=name)


def _access_token(credential: Password | InviteToken | PlatformToken | Bearer) -> str | None:
    """The access token a credential presents, if it presents one."""
    if isinstance(credential, PlatformToken):
        return credential.token
    if isinstance(credential, Bearer) and looks_like_jwt(credential.token):
        return credential.token
    return None


def _token_grant(
    attempt: Attempt, token: str, facts: Facts, record: RoomRecord, tokens: AccessTokens
) -> AccessGrant | CheckRevocation | Refused:
    """What a valid access token for this room grants, or the verdict."""
    try:
        grant = tokens.verify(token, attempt.now)
    except InvalidAccessToken as exc:
        return Refused("bad_token", exc.explanation)
    if grant.role not in ROOM_ROLES:
        return Refused(
            "role_not_allowed", f"a {grant.role} token is for the APIs; it admits to no room"
        )
    if grant.room != record.id:
        return Refused("wrong_room", "the access token is for another room")
    if grant.jti is not None:
        if facts.revoked is None:
            return CheckRevocation(grant.jti)
        if facts.revoked:
            return Refused("bad_token", InvalidAccessToken("revoked").explanation)
    return grant


def _token_refusal(entry: Entry, kind: RoomKind, grant: AccessGrant) -> Refused | None:
    """Rule 4 for access tokens: whether the entry point takes the token's role."""
    if entry is Entry.PUBLISH and grant.role == "viewer":
        return Refused("role_not_allowed", "a viewer's access token does not publish")
    if entry is Entry.WATCH and kind != "lecture" and grant.role != "viewer":
        return Refused(
            "role_not_allowed",
            "a meeting is watched only with a viewer's access token, whose holder its "
            "participants see",
        )
    return None


def _credential_role(
    attempt: Attempt,
    credential: Password | InviteToken | Bearer,
    facts: Facts,
    record: RoomRecord,
    signer: InviteSigner,
) -> tuple[Role, bool] | CheckPassword | Refused:
    """The role the credential admits as and whether it is a session token, or the verdict."""
    if isinstance(credential, InviteToken):
        try:
            return _invite_role(signer, record, credential.token, attempt.now), False
        except InvalidInvite as exc:
            return Refused("bad_invite", exc.reason)
    if isinstance(credential, Bearer):
        if attempt.entry is Entry.WATCH and facts.session_role is not None:
            return facts.session_role, True
        try:
            return _invite_role(signer, record, credential.token, attempt.now), False
        except InvalidInvite:
            password = credential.token  # no invite: a password, then
    else:
        password = credential.text
    # Only passwords consult the throttle: signatures cannot be guessed, so nobody's guesses
    # can refuse a valid invite or session token.
    if facts.lockout is not None:
        return _rate_limited(facts.lockout)
    if facts.password is None:
        return CheckPassword(password)
    if facts.password.role is None:
        wrong = "wrong room password" if attempt.entry is Entry.JOIN else None
        return Refused("wrong_password", wrong or credential_needed(attempt.entry, record.kind))
    return facts.password.role, False


def _invite_role(signer: InviteSigner, record: RoomRecord, token: str, now: float) -> Role:
    # Invites issued before the room (id) was re-created are void.
    return signer.verify(token, record.id, now, room_created_at=record.created_at).role


def missing_room(room_id: str, lockout: float | None) -> Refused:
    """The refusal for a room that does not exist, ``lockout`` being the address's (unknown
    room ids count against the address like wrong passwords, so probing ids is throttled)."""
    if lockout is not None:
        return _rate_limited(lockout)
    return Refused("unknown_room", f"no room {room_id!r}")


def _rate_limited(retry_after: float) -> Refused:
    return Refused("rate_limited", "too many failed attempts", retry_after=retry_after)


def credential_needed(entry: Entry, kind: RoomKind | None) -> str:
    """What would admit through ``entry`` to a room of ``kind`` (None: not known), for a
    refusal's message."""
    if entry is Entry.JOIN:
        return "join needs a password or an invite"
    if entry is Entry.PUBLISH:
        return "the room password or a publishing invite is needed"
    if kind == "lecture":
        return "a viewer password, room password, invite or session token"
    return "a viewer invite's token (or a participant's session token)"
