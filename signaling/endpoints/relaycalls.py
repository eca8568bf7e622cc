"""How one worker calls another about a relay: the same node's workers, or another node's.

The relays (:mod:`mcu.signaling.endpoints.relays`) ask the other end for things over the
contract's internal routes: :class:`Peers` reaches this node's workers over their Unix sockets,
:class:`Nodes` a worker of another node through that node's front (signed as this node's).
:func:`call` and :func:`ask` bound each request and turn every failure into :class:`RelayError`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from mcu.infra.httpapi import describe_validation_error
from mcu.sfu.relaykeying import RelayKeying

__all__ = [
    "PEER_TIMEOUT",
    "ROOM_HOME",
    "NodeLinks",
    "Nodes",
    "OnNode",
    "Peers",
    "RelayError",
    "RelayRefused",
    "RelayTree",
    "ask",
    "call",
    "edge_name",
]

_M = TypeVar("_M", bound=BaseModel)

# How long a worker waits for another one to answer before giving up on the request.
PEER_TIMEOUT = 5.0


class Peers(Protocol):
    """Requests to the other workers of this server."""

    async def request(
        self,
        worker: int,
        method: str,
        path: str,
        body: BaseModel | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send ``body`` as JSON; the status and the decoded JSON reply (None if there was none)."""
        ...


class Nodes(Protocol):
    """Requests to a worker of another node of the cluster (named by its id), signed as this
    node's."""

    async def request(
        self, node: str, worker: int | None, method: str, path: str, body: BaseModel | None = None
    ) -> tuple[int, Any]:
        """Send ``body`` as JSON to ``worker`` of ``node`` (None: the home worker of the room
        the path names, as that node knows it); the status and the decoded reply."""
        ...

    async def alive(self, node: str) -> bool:
        """Whether ``node`` is in the registry (True when that cannot be told now)."""
        ...


ROOM_HOME = -1
"""The home worker of a room homed on another node, whichever it is there: an edge on another
node cannot know the index, the home node's front finds it for each call."""


@dataclass(frozen=True)
class OnNode:
    """Another node's workers seen as :class:`Peers` (worker :data:`ROOM_HOME`: the room's)."""

    nodes: Nodes
    node: str

    async def request(
        self,
        worker: int,
        method: str,
        path: str,
        body: BaseModel | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        index = None if worker == ROOM_HOME else worker
        return await self.nodes.request(self.node, index, method, path, body)


class RelayTree(Protocol):
    """Where this node takes the stage of a room homed on another node from: the home, or a
    node that already has it (a tree with a bounded fan-out)."""

    async def attach(self, room: str, home: str, worker: int) -> tuple[str, int | None]:
        """The parent node for this node's entry ``worker`` of ``room`` (homed on ``home``),
        and its entry worker (None: the room's home worker on the home node)."""
        ...

    async def detach(self, room: str) -> None:
        """This node no longer takes ``room``."""
        ...


@dataclass(frozen=True)
class NodeLinks:
    """What a worker of a cluster's node needs to relay to and from other nodes."""

    node: str
    "This node's id."
    host: str
    "The address other nodes reach this worker's relay socket at (the relay address)."
    keying: RelayKeying
    "The SRTP keys of relays between nodes."
    nodes: Nodes
    "Calls to other nodes' workers."
    tree: RelayTree | None = None
    "The rooms' relay trees between nodes (None: every node takes a stage from its home)."


class RelayRefused(Exception):
    """A relay request this worker will not serve (another node's, without what it needs)."""


def edge_name(node: str | None, worker: int) -> str:
    """An edge as a room's audience counts it: ``worker``, or ``node/worker`` on another node."""
    return str(worker) if node is None else f"{node}/{worker}"


class RelayError(Exception):
    """Another worker could not be reached or refused (the viewer gets 503)."""


async def call(
    peers: Peers, worker: int, method: str, path: str, body: BaseModel | None = None
) -> Any:
    """The decoded JSON reply of a request that succeeded (for the caller to validate)."""
    try:
        status, reply = await asyncio.wait_for(
            peers.request(worker, method, path, body=body), PEER_TIMEOUT
        )
    except Exception as exc:
        raise RelayError(f"worker {worker} did not answer {method} {path}: {exc}") from exc
    if status >= 300:
        raise RelayError(f"worker {worker} answered {status} to {method} {path}: {reply}")
    return reply


async def ask(
    peers: Peers, worker: int, method: str, path: str, body: BaseModel, reply: type[_M]
) -> _M:
    """The reply of a request, as the model the contract says it is."""
    answer = await call(peers, worker, method, path, body)
    try:
        return reply.model_validate(answer)
    except ValidationError as exc:
        problem = describe_validation_error(exc)
        raise RelayError(f"worker {worker} sent a malformed {reply.__name__}: {problem}") from None
