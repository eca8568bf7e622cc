"""The media sources a participant publishes and subscribes to, as the protocol names them."""

from __future__ import annotations

from typing import Literal

Source = Literal["microphone", "camera", "content"]
SOURCES: tuple[Source, ...] = ("microphone", "camera", "content")
"Every source, in the order the protocol lists them (a subscription's default: all of them)."
