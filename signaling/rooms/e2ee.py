"""What an end-to-end encrypted room refuses: everything that needs the media in plaintext.

In such a room the browsers encrypt each frame with a key the server never has
(docs/e2ee.md); the server still forwards every packet, but anything that decodes, renders or
keeps media would either fail on ciphertext or put plaintext where the participants chose not
to have it. So recording, the mix and server-rendered slides are refused, with one code the
clients translate, rather than started and left broken.
"""

from __future__ import annotations

from typing import Literal, Protocol

from mcu.signaling.rooms.errors import RoomError

__all__ = [
    "E2eeRefused",
    "PlaintextFeature",
    "SupportsE2ee",
    "check_client",
    "refusal",
    "refuse_in_e2ee",
]

PlaintextFeature = Literal["recording", "mixing", "slides", "whep", "whip"]

_WHY = {
    "recording": "cannot be recorded: the server cannot read its media",
    "mixing": "cannot be mixed: the server cannot decode its media; receive the streams instead",
    "slides": "cannot show server-rendered slides (they would be readable by the server); "
    "share the screen or window showing the document instead",
    "whep": "admits only players that hold the room key (the room's page with its key); "
    "a plain WHEP player would receive media it cannot decrypt",
    "whip": "admits only publishers that encrypt with the room key; a plain WHIP "
    "publisher would send media the server can read and the participants cannot",
}


class SupportsE2ee(Protocol):
    """A room as this module reads it."""

    @property
    def e2ee(self) -> bool:
        """Whether the room's media is end-to-end encrypted."""
        ...


class E2eeRefused(RoomError):
    """The room is end-to-end encrypted and the request needs its media in plaintext; one code
    for every such refusal, on every endpoint."""

    code = "e2ee_room"


def refusal(feature: PlaintextFeature) -> E2eeRefused:
    """The refusal of ``feature`` in an end-to-end encrypted room, said the same everywhere."""
    return E2eeRefused(f"this room is end-to-end encrypted and {_WHY[feature]}")


def check_client(room_e2ee: bool, client_e2ee: bool) -> None:
    """Raise ``E2eeRefused`` (code ``e2ee_mismatch``) unless a joining client encrypts exactly
    when the room is end-to-end encrypted: a client without the key would send plaintext the
    others cannot play (and the server could read); one with a key, ciphertext nobody else can
    decrypt."""
    if room_e2ee and not client_e2ee:
        raise E2eeRefused(
            "this room is end-to-end encrypted: join from its page with the room key "
            "(the link with #key=, or the shared passphrase)",
            code="e2ee_mismatch",
        )
    if client_e2ee and not room_e2ee:
        raise E2eeRefused(
            "this room is not end-to-end encrypted (any more): reload the page",
            code="e2ee_mismatch",
        )


def refuse_in_e2ee(room: SupportsE2ee, feature: PlaintextFeature) -> None:
    """Raise :class:`E2eeRefused` if ``room`` is end-to-end encrypted; otherwise nothing."""
    if room.e2ee:
        raise refusal(feature)
