"""A connection closed while aiortc is still connecting it: expected, not an error.

When a client leaves (or a WHIP session is deleted) within moments of its offer, aiortc's
``RTCPeerConnection.__connect`` task, started by ``setRemoteDescription`` and never awaited by
anyone, finds its ICE transport closed and ends with ``InvalidStateError``. asyncio then logs
"Task exception was never retrieved" with a traceback at ERROR: noise that hides real errors
(and a test's "no traceback in the log" check). The filter logs that one case at DEBUG and
hands everything else to the loop's default handler.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiortc.exceptions import InvalidStateError

logger = logging.getLogger(__name__)

CONNECT_TASK = "RTCPeerConnection.__connect"
"The qualified name of aiortc's connecting coroutine (name mangling keeps it so)."


def is_close_race(context: dict[str, Any]) -> bool:
    """Whether an exception context is aiortc's connect task finding its transport closed."""
    if not isinstance(context.get("exception"), InvalidStateError):
        return False
    future = context.get("future")
    coro = future.get_coro() if isinstance(future, asyncio.Task) else None
    return getattr(coro, "__qualname__", "") == CONNECT_TASK


def filter_close_races(loop: asyncio.AbstractEventLoop) -> None:
    """Install the filter on ``loop`` (keeping any handler already set for the rest)."""
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if is_close_race(context):
            logger.debug("a connection closed while connecting: %s", context.get("exception"))
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
