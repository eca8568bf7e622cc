"""Active-speaker detection from the RTP audio levels publishers send (RFC 6464)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Levels are -dBov: 0 is loudest, 127 silence. Quieter than this counts as not speaking.
SPEECH_THRESHOLD = 60
# A new speaker must lead for this many consecutive ticks before the room is told (no flapping).
TICKS_TO_SWITCH = 2


@dataclass
class SpeakerDetector:
    """Picks the loudest participant per tick, with hysteresis; pure, no clock of its own."""

    current: str | None = None
    _candidate: str | None = field(default=None, repr=False)
    _streak: int = field(default=0, repr=False)

    def tick(self, mean_levels: dict[str, float]) -> str | None:
        """Feed each participant's mean level over the last tick; returns the new speaker on change.

        Returns None when the active speaker did not change.
        """
        speaking = {p: lvl for p, lvl in mean_levels.items() if lvl <= SPEECH_THRESHOLD}
        if not speaking:
            self._candidate, self._streak = None, 0
            return None
        loudest = min(speaking, key=lambda p: speaking[p])
        if loudest == self.current:
            self._candidate, self._streak = None, 0
            return None
        if loudest == self._candidate:
            self._streak += 1
        else:
            self._candidate, self._streak = loudest, 1
        if self._streak >= TICKS_TO_SWITCH or self.current is None:
            self.current, self._candidate, self._streak = loudest, None, 0
            return loudest
        return None

    def forget(self, participant_id: str) -> bool:
        """A participant left; returns True if it was the active speaker."""
        if self._candidate == participant_id:
            self._candidate, self._streak = None, 0
        if self.current == participant_id:
            self.current = None
            return True
        return False
