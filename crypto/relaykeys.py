"""The keys of a relay between two nodes, agreed without ever sending a key.

A relay carries a room's stage from its home worker to an edge worker over UDP. Between nodes
those packets cross networks we do not control, so they are SRTP (:mod:`mcu.crypto.relaysrtp`)
under keys both ends derive from the cluster secret they already share and two random nonces
exchanged in the (authenticated) relay request and reply:

- the edge's nonce, drawn once per relay socket (``RelayRequest.nonce``): a restarted edge
  draws a new one, so its keys are new even if it got the same address;
- the home's nonce, drawn whenever the home (re)keys its link to that edge
  (``RelayReply.nonce``).

Each direction has its own key::

    derive_key(cluster_secret, f"relay {home} {edge} {edge_nonce}:{home_nonce} {direction}")

where ``home`` and ``edge`` are the two relay sockets (``host:port``) and ``direction`` is
``home-to-edge`` or ``edge-to-home``. The nonces travel in the clear; without the secret they
are worth nothing. A fresh pair of nonces gives fresh keys, so no key ever restarts its SRTP
packet index (which AES-GCM would punish by revealing its authentication key).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

from mcu.crypto.clustercalls import derive_key

__all__ = [
    "RELAY_KEY_BYTES",
    "RELAY_NONCE_PATTERN",
    "Direction",
    "RelayKeys",
    "new_relay_nonce",
    "relay_key",
    "relay_keys",
]

RELAY_KEY_BYTES = 44
"An SRTP master key and salt for AEAD_AES_256_GCM: 32 bytes of key, 12 of salt (RFC 7714)."

RELAY_NONCE_PATTERN = r"^[A-Za-z0-9_-]{22,64}$"
"""What a relay nonce looks like on the wire (URL-safe base64, at least 128 bits): the contract
validates the nonces it carries against it."""

_NONCE_BYTES = 16

Direction = Literal["home-to-edge", "edge-to-home"]
"Which way the packets a key protects travel."


def new_relay_nonce() -> str:
    """A fresh random nonce (128 bits, URL-safe base64)."""
    return secrets.token_urlsafe(_NONCE_BYTES)


def relay_key(
    cluster_secret: bytes, home: str, edge: str, nonce: str, direction: Direction
) -> bytes:
    """The SRTP master key and salt (:data:`RELAY_KEY_BYTES`) for one direction of a relay."""
    purpose = f"relay {home} {edge} {nonce} {direction}"
    return derive_key(cluster_secret, purpose, RELAY_KEY_BYTES)


@dataclass(frozen=True)
class RelayKeys:
    """Both keys of one relay between a home and an edge socket (``repr`` hides them)."""

    home_to_edge: bytes
    "Protects the stage's RTP and sender reports."
    edge_to_home: bytes
    "Protects the edge's keyframe requests."

    def __repr__(self) -> str:
        return "RelayKeys(...)"


def relay_keys(
    cluster_secret: bytes, home: str, edge: str, edge_nonce: str, home_nonce: str
) -> RelayKeys:
    """The keys of the relay from the home socket ``home`` to the edge socket ``edge``
    (``host:port`` each) with the nonces the two ends exchanged."""
    nonce = f"{edge_nonce}:{home_nonce}"
    return RelayKeys(
        home_to_edge=relay_key(cluster_secret, home, edge, nonce, "home-to-edge"),
        edge_to_home=relay_key(cluster_secret, home, edge, nonce, "edge-to-home"),
    )
