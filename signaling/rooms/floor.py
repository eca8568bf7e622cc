"""Floor control for the content channel: one presenter at a time, a line, chair pre-emption.

Pure state (no I/O): each call returns what changed, and the room announces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["stream", "slides"]
Reason = Literal["granted", "released", "preempted", "left"]


@dataclass(frozen=True)
class FloorChange:
    """A change to announce: who holds the floor now, and why."""

    holder: str | None
    mode: Mode | None
    reason: Reason
    previous: str | None = None
    "The former holder, whose content must end (on pre-emption, release or leaving)."

    def to_message(self) -> dict[str, object]:
        """The protocol's ``floor`` event."""
        return {"type": "floor", "holder": self.holder, "mode": self.mode, "reason": self.reason}


@dataclass
class FloorControl:
    """Who holds the content floor of one room, and who waits for it."""

    holder: str | None = None
    mode: Mode | None = None
    queue: list[str] = field(default_factory=list)

    def request(self, participant_id: str, *, preempt: bool) -> FloorChange | int | None:
        """Ask for the floor: a change when granted, the line position when queued, None if held."""
        if self.holder == participant_id:
            return None
        if self.holder is None or preempt:
            previous = self.holder
            if participant_id in self.queue:
                self.queue.remove(participant_id)
            self.holder, self.mode = participant_id, None
            return FloorChange(
                participant_id, None, "preempted" if previous else "granted", previous
            )
        if participant_id not in self.queue:
            self.queue.append(participant_id)
        return self.queue.index(participant_id) + 1

    def release(self, participant_id: str, reason: Reason = "released") -> FloorChange | None:
        """Give the floor back (or leave the line); the next in line gets it."""
        if participant_id in self.queue:
            self.queue.remove(participant_id)
            return None
        if self.holder != participant_id:
            return None
        if self.queue:
            self.holder, self.mode = self.queue.pop(0), None
            return FloorChange(self.holder, None, "granted", participant_id)
        self.holder, self.mode = None, None
        return FloorChange(None, None, reason, participant_id)

    def set_mode(self, participant_id: str, mode: Mode | None) -> FloorChange | None:
        """The holder started (or stopped) showing something."""
        if self.holder != participant_id or self.mode == mode:
            return None
        self.mode = mode
        return FloorChange(participant_id, mode, "granted")

    def positions(self) -> list[tuple[str, int]]:
        """Everyone in line with their position (1 = next)."""
        return [(p, i + 1) for i, p in enumerate(self.queue)]
