"""Putting SRTP on a relay between nodes: the keys each end installs, and when it re-keys.

The agreement is two nonces (:mod:`mcu.crypto.relaykeys`): the edge sends the nonce of its relay
socket in ``RelayRequest``, the home answers with its own in ``RelayReply``, and both derive the
same two keys from the cluster secret. Nothing secret crosses the network.

- The home (:meth:`RelayKeying.secure_link`) keys its link to an edge when the link is new or the
  edge's nonce changed (a restarted edge that got the same address); otherwise it answers with
  the nonce it already keys with, so every room relayed over one link shares its keys and no
  other room's streams are disturbed.
- The edge (:meth:`RelayKeying.secure_source`) installs the keys the reply names, replacing
  older ones from that home's address only when the home's nonce changed (a restarted home).

Every new key pair starts from fresh nonces, so an SRTP packet index is never used twice under
one key. That is also why an edge keeps a home's cipher as long as its socket lives, even when no
room comes from that home any more: dropping it and keying again from the same nonces would
start the packet indexes over.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from mcu.crypto.relaykeys import new_relay_nonce, relay_keys
from mcu.crypto.relaysrtp import RelayCipher
from mcu.infra.metrics import RELAY_PACKETS_REJECTED
from mcu.sfu.relay import Address, RelayEndpoint, RelayLink

__all__ = ["RelayKeying", "relay_address"]


def relay_address(address: tuple[str, int]) -> str:
    """A relay socket as the key derivation names it: ``host:port``."""
    return f"{address[0]}:{address[1]}"


def _count_rejection(reason: str) -> None:
    RELAY_PACKETS_REJECTED.labels(reason).inc()


class RelayKeying:
    """The SRTP keys of one worker's relays to and from other nodes.

    ``nonce`` is this worker's edge nonce: drawn once, sent in every relay request it makes.
    """

    def __init__(
        self,
        cluster_secret: bytes,
        *,
        nonce: str | None = None,
        on_reject: Callable[[str], None] = _count_rejection,
    ) -> None:
        self._secret = cluster_secret
        self._on_reject = on_reject
        self.nonce = new_relay_nonce() if nonce is None else nonce
        "This worker's nonce as an edge (RelayRequest.nonce)."

    def secure_link(self, link: RelayLink, home: str, edge: str, edge_nonce: str) -> str:
        """Home side: key ``link`` (home socket ``home``, edge socket ``edge``, as the request
        and reply name them) for the edge that sent ``edge_nonce``; returns the home's nonce
        for the reply."""
        cipher = link.cipher
        if cipher is not None:
            known_edge, _, home_nonce = cipher.nonce.partition(":")
            if known_edge == edge_nonce:
                return home_nonce
        home_nonce = new_relay_nonce()
        keys = relay_keys(self._secret, home, edge, edge_nonce, home_nonce)
        link.cipher = RelayCipher(
            keys.home_to_edge, keys.edge_to_home, f"{edge_nonce}:{home_nonce}", self._on_reject
        )
        return home_nonce

    def secure_source(
        self, endpoint: RelayEndpoint, remote: Address, home: str, edge: str, home_nonce: str
    ) -> None:
        """Edge side: receive SRTP from the home socket at ``remote`` (named ``home`` in the
        reply) under the keys of ``home_nonce`` and this worker's nonce."""
        host, port = remote
        remote = (str(ipaddress.ip_address(host)), int(port))  # as the socket names senders
        nonce = f"{self.nonce}:{home_nonce}"
        known = endpoint.sources.get(remote)
        if known is not None and known.nonce == nonce:
            return
        keys = relay_keys(self._secret, home, edge, self.nonce, home_nonce)
        endpoint.sources[remote] = RelayCipher(
            keys.edge_to_home, keys.home_to_edge, nonce, self._on_reject
        )
