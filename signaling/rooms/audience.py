"""A room's audience: who watches without being seen, counted (and in a meeting, named)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mcu.signaling.rooms.events import ViewerPeak
from mcu.signaling.rooms.participant import send_quietly

if TYPE_CHECKING:
    from mcu.signaling.rooms.ports import RoomView

# Viewer counts change with every join in a lesson of hundreds: lecturers hear about it this often.
VIEWER_COUNT_INTERVAL = 1.0
# A lesson's audience grows by hundreds in its first minutes; the platform hears of a new peak
# at most this often, so a burst of joins is a handful of events.
VIEWER_PEAK_INTERVAL = 10.0


class ViewerPeaks:
    """The largest audience a lesson has had, reported at most once per ``interval`` seconds
    (the first at once, a larger one later when its interval is up). Pure: time is passed in."""

    def __init__(self, interval: float = VIEWER_PEAK_INTERVAL) -> None:
        self.interval = interval
        self.largest = 0
        "The largest count seen."
        self.reported = 0
        "The largest count reported."
        self._reported_at: float | None = None

    def observe(self, count: int, now: float) -> int | None:
        """Note the audience at ``now``; returns the peak to report now, or None."""
        self.largest = max(self.largest, count)
        return self.due(now)

    def due(self, now: float) -> int | None:
        """The peak to report at ``now`` (a larger one waiting for its interval), or None."""
        if self.largest <= self.reported:
            return None
        if self._reported_at is not None and now - self._reported_at < self.interval:
            return None
        self.reported, self._reported_at = self.largest, now
        return self.largest

    def next_report(self) -> float | None:
        """When the peak waiting now may be reported; None when none waits."""
        if self.largest <= self.reported or self._reported_at is None:
            return None
        return self._reported_at + self.interval


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
        self.peaks = ViewerPeaks()
        "A lesson's largest audience, for the platform."
        self._peak_timer: asyncio.TimerHandle | None = None

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
        self._note_peak()

    def _note_peak(self) -> None:
        """Emit a lesson's new largest audience, or look again when its interval is up."""
        if self.room.kind != "lecture":
            return
        loop = asyncio.get_running_loop()
        peak = self.peaks.observe(self.viewer_count(), loop.time())
        if peak is not None:
            self.room.emit(ViewerPeak(self.room.id, peak))
        due = self.peaks.next_report()
        if due is not None and self._peak_timer is None:
            self._peak_timer = loop.call_at(due, self._peak_interval_up)

    def _peak_interval_up(self) -> None:
        self._peak_timer = None
        self._note_peak()

    def stop(self) -> None:
        """Tell nobody any more (the room is empty)."""
        if self._viewer_count_task is not None:
            self._viewer_count_task.cancel()
            self._viewer_count_task = None
        if self._peak_timer is not None:
            self._peak_timer.cancel()
            self._peak_timer = None

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
