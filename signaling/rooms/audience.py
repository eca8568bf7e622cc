"""A room's audience: who watches without being seen, counted (and in a meeting, named)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mcu.signaling.rooms.participant import send_quietly

if TYPE_CHECKING:
    from mcu.signaling.rooms.ports import RoomView

# Viewer counts change with every join in a lesson of hundreds: lecturers hear about it this often.
VIEWER_COUNT_INTERVAL = 1.0


class Audience:
    """Who watches a room without being seen: its viewer participants and WHEP sessions, here
    and on other workers. Chairs and speakers are told how many (and, in a meeting, who)."""

    def __init__(self, room: RoomView) -> None:
        self.room = room
        self.whep_watchers: dict[str, str] = {}
        "WHEP sessions on this worker not tied to a participant: the name each gave, by watcher id."
        self.remote_viewers: dict[str, int] = {}
        "WHEP sessions of this room on other workers, by worker."
        self.remote_watchers: dict[str, dict[str, str]] = {}
        "Their names by watcher id, by worker."
        self._viewers_sent: tuple[int, list[dict[str, str]]] | None = None
        self._viewer_count_task: asyncio.Task[None] | None = None

    def viewer_count(self) -> int:
        """Viewers in this room on every worker: viewer participants and WHEP sessions."""
        participants = sum(1 for p in self.room.participants.values() if not p.visible)
        return participants + len(self.whep_watchers) + sum(self.remote_viewers.values())

    def watchers(self) -> list[dict[str, str]]:
        """Who watches, ``[{id, name}]``: everyone in a meeting, nobody in a lecture.

        A meeting's participants must know who sees and hears them (a consultation is private);
        a lecture's audience of hundreds is only counted.
        """
        if self.room.kind == "lecture":
            return []
        named = [
            {"id": p.id, "name": p.name} for p in self.room.participants.values() if not p.visible
        ]
        named += [{"id": i, "name": n} for i, n in self.whep_watchers.items()]
        for worker in sorted(self.remote_watchers):
            named += [{"id": i, "name": n} for i, n in self.remote_watchers[worker].items()]
        return named

    def add_watcher(self, watcher_id: str, name: str) -> None:
        """A WHEP session on this worker, not tied to a participant, started watching."""
        self.whep_watchers[watcher_id] = name
        self.viewers_changed()

    def remove_watcher(self, watcher_id: str) -> None:
        """That WHEP session ended."""
        if self.whep_watchers.pop(watcher_id, None) is not None:
            self.viewers_changed()

    def set_remote_watchers(self, worker: str, count: int, watchers: dict[str, str]) -> None:
        """Another worker's WHEP sessions of this room (``watchers``: their names by id)."""
        self.remote_viewers[worker] = max(0, count)
        self.remote_watchers[worker] = watchers
        self.viewers_changed()

    def forget_worker(self, worker: str) -> None:
        """Another worker no longer serves this room's viewers."""
        self.remote_viewers.pop(worker, None)
        self.remote_watchers.pop(worker, None)
        self.viewers_changed()

    def viewers_changed(self) -> None:
        """Tell chairs and speakers the new viewer count (and, in a meeting, who watches), at
        most once per ``VIEWER_COUNT_INTERVAL``."""
        if self._viewer_count_task is None or self._viewer_count_task.done():
            self._viewer_count_task = asyncio.create_task(self._send_viewer_count())

    def stop(self) -> None:
        """Tell nobody any more (the room is empty)."""
        if self._viewer_count_task is not None:
            self._viewer_count_task.cancel()
            self._viewer_count_task = None

    async def _send_viewer_count(self) -> None:
        now = (self.viewer_count(), self.watchers())
        if now != self._viewers_sent:
            self._viewers_sent = now
            message = {"type": "viewers", "count": now[0], "watchers": now[1]}
            for participant in list(self.room.participants.values()):
                if participant.visible:
                    await send_quietly(participant, message)
        await asyncio.sleep(VIEWER_COUNT_INTERVAL)
        if (self.viewer_count(), self.watchers()) != self._viewers_sent:
            self._viewer_count_task = asyncio.create_task(self._send_viewer_count())
