"""Signalling frames (``parse_client_message``), as a WebSocket delivers them.

Refusal: :class:`~mcu.signaling.endpoints.messages.ProtocolError`. Property: an accepted message,
written back as JSON, parses to the same message.
"""

from __future__ import annotations

import json

from mcu.signaling.endpoints.messages import ProtocolError, parse_client_message

from ..harness import Crash, text


def signaling_message(data: bytes) -> None:
    """One text frame."""
    try:
        message = parse_client_message(text(data))
    except ProtocolError as exc:
        if not exc.to_message()["message"]:
            raise Crash("a refusal without a message") from None
        return
    again = parse_client_message(json.dumps(message.model_dump(mode="json", by_alias=True)))
    if again != message:
        raise Crash(f"{message!r} round-trips as {again!r}")
