"""What a worker relays a room's stage from: the room itself (at its home), or the stage it
receives as an edge (an edge relaying further, as a home does).

:class:`~mcu.signaling.endpoints.relays.HomeRelays` needs of a source only its id, its stage,
a place to register the relays it feeds (so the source can end them) and an audience that the
edges it feeds report their viewers to. A live :class:`~mcu.signaling.rooms.session.Room` is one
(at the room's home); :class:`RelayedSource` is the other: the stage an edge receives, passed on
to further edges (the other workers of its node, when it is the node's entry for a room homed on
another node), whose viewers it adds to its own in what it reports upstream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from mcu.sfu.stage import Stage

__all__ = ["RelayAudience", "RelaySource", "RelayedSource"]

Closer = Callable[[], Awaitable[None]]


class RelayAudience(Protocol):
    """Where the edges a source feeds report their viewers."""

    def set_remote_watchers(self, worker: str, count: int, watchers: dict[str, str]) -> None:
        """Edge ``worker``'s viewers: how many, and their names by watcher id."""
        ...

    def forget_worker(self, worker: str) -> None:
        """Edge ``worker`` no longer serves viewers of the room."""
        ...


class RelaySource(Protocol):
    """A room as the relays see it."""

    @property
    def id(self) -> str:
        """The room's id."""
        ...

    @property
    def stage(self) -> Stage:
        """What is relayed."""
        ...

    @property
    def viewer_sessions(self) -> dict[str, Closer]:
        """The relays (and, at the home, WHEP sessions) fed from it, each with its closer."""
        ...

    @property
    def audience(self) -> RelayAudience:
        """Where fed edges report their viewers."""
        ...


class RelayedSource:
    """An edge's relayed stage as a source of further relays; the viewers of the edges it
    feeds are summed into what it reports upstream (``changed`` is called on every change)."""

    def __init__(self, room_id: str, stage: Stage, changed: Callable[[], None]) -> None:
        self.id = room_id
        self.stage = stage
        self.viewer_sessions: dict[str, Closer] = {}
        self.downstream: dict[str, tuple[int, dict[str, str]]] = {}
        "What each fed edge reported: its count and its watchers' names by id."
        self._changed = changed

    @property
    def audience(self) -> RelayedSource:
        """Itself: fed edges report here."""
        return self

    def set_remote_watchers(self, worker: str, count: int, watchers: dict[str, str]) -> None:
        """A fed edge's viewers."""
        self.downstream[worker] = (max(0, count), watchers)
        self._changed()

    def forget_worker(self, worker: str) -> None:
        """A fed edge has no viewers left."""
        if self.downstream.pop(worker, None) is not None:
            self._changed()

    def totals(self) -> tuple[int, dict[str, str]]:
        """The viewers of every fed edge: their count, and their names by watcher id."""
        count = sum(c for c, _ in self.downstream.values())
        names = {i: n for _, watchers in self.downstream.values() for i, n in watchers.items()}
        return count, names
