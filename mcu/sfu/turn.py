"""The ICE servers a client is told to use: the configured ones, and a TURN relay with a
credential made for that client alone.

A hospital's firewall opens no listening port and often lets out only TCP, or only port 443: a
browser there reaches the server through a TURN relay (coturn) that the server's operators run.
The relay and the server share a secret, and each client gets a user name and password that
expire (:func:`mcu.crypto.turn.turn_credential`), so a credential copied out of a page stops
working on its own and coturn needs no list of users.

The server's own peer connections get none of this: the server has open ports and answers the
relay's packets on its ordinary host candidates, so it never allocates a relay itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mcu.crypto.turn import turn_credential
from mcu.sfu.peer import IceServerConfig

__all__ = ["ClientIceServers", "TurnRelay"]


@dataclass(frozen=True)
class TurnRelay:
    """A TURN server that checks time-limited credentials (coturn's ``use-auth-secret``)."""

    urls: tuple[str, ...]
    """``turn:``/``turns:`` URLs of the relay, e.g. ``turn:turn.example.org:3478?transport=udp``."""
    secret: bytes = field(repr=False)
    """coturn's ``static-auth-secret``: never logged, never sent to a client."""
    ttl: int
    """Seconds a credential stays valid after it is handed out."""


@dataclass(frozen=True)
class ClientIceServers:
    """What each client is handed in ``joined.ice_servers`` and WHIP/WHEP ``Link`` headers."""

    configured: tuple[IceServerConfig, ...] = ()
    """STUN/TURN servers given as they are (``ice_servers`` in the configuration)."""
    relay: TurnRelay | None = None
    """The TURN relay whose credentials are made per client, if any."""

    def issue(self, user_id: str, now: float) -> list[IceServerConfig]:
        """The servers for the client ``user_id`` (a participant or session label, written in
        the relay's log) at Unix time ``now``; a fresh TURN credential each call."""
        servers = list(self.configured)
        if self.relay is not None:
            issued = turn_credential(self.relay.secret, user_id, now, self.relay.ttl)
            servers.append(
                IceServerConfig(
                    urls=self.relay.urls, username=issued.username, credential=issued.credential
                )
            )
        return servers
