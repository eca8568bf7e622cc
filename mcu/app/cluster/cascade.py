"""Which node serves a new WHEP viewer of a room homed on another node: this one, as an edge of
the home, unless it is full.

A node that is not a room's home serves the room's new viewers itself: one of its workers asks
the home's worker for a relay of the stage (:mod:`mcu.signaling.endpoints.relays`), so the home
sends one copy of the stage to this node however many viewers it has. Only a node at its
capacity (:data:`VIEWERS_PER_WORKER` viewers per worker, at its last heartbeat) sends a new
viewer elsewhere: ``307`` to the live node with the most room left, and when every node is full,
it keeps the viewer (its worker answers ``503`` if it is saturated).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from mcu.contracts.nodes import NodeRecord

__all__ = ["VIEWERS_PER_WORKER", "NodeCascade", "room_left", "viewer_node"]

VIEWERS_PER_WORKER = 400
"""Lecture viewers one worker (one core) serves well: measured on the build machine's class
(docs/cluster.md, "Capacity"). A node with this many per worker sends new viewers elsewhere."""


def room_left(node: NodeRecord) -> int:
    """How many more viewers ``node`` takes before it is full."""
    return node.workers * VIEWERS_PER_WORKER - node.viewers


def viewer_node(me: NodeRecord | None, nodes: Sequence[NodeRecord]) -> NodeRecord | None:
    """Where a new viewer goes: None to serve it here (``me``: this node's last heartbeat,
    None before its first), else the live node in ``nodes`` with the most room left."""
    if me is None or room_left(me) > 0:
        return None
    others = [n for n in nodes if n.node != me.node and room_left(n) > 0]
    if not others:
        return None  # everyone is full: no node would do better than this one
    return max(others, key=lambda n: (room_left(n), n.node))


class NodeCascade:
    """The cascade policy of one node: its last heartbeat and the registry's live nodes."""

    def __init__(
        self,
        me: Callable[[], NodeRecord | None],
        live_nodes: Callable[[], Awaitable[list[NodeRecord] | None]],
    ) -> None:
        self._me = me
        self._live_nodes = live_nodes

    async def viewer_node(self, room: str, home: NodeRecord) -> NodeRecord | None:
        """None: serve ``room``'s new viewer here (as an edge of ``home``); else the node to
        redirect it to. The registry is read only when this node is full."""
        me = self._me()
        if me is None or room_left(me) > 0:
            return None
        return viewer_node(me, await self._live_nodes() or [])
