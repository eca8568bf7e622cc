"""The room domain: rooms, participants, publishing and subscribing, stage, content,
mixing, recording, admission. No HTTP or WebSocket here."""
