"""The close-race filter: aiortc's connect task finding its transport closed is not an error."""

from __future__ import annotations

import asyncio
import contextlib

from aiortc import RTCPeerConnection
from aiortc.exceptions import InvalidStateError

from mcu.sfu.closing import filter_close_races


async def test_only_the_connect_task_finding_its_transport_closed_is_quieted() -> None:
    loop = asyncio.get_running_loop()
    seen: list[object] = []
    loop.set_exception_handler(lambda loop, context: seen.append(context.get("exception")))
    filter_close_races(loop)
    pc = RTCPeerConnection()
    # aiortc's own connecting coroutine, as setRemoteDescription starts it.
    connecting = asyncio.ensure_future(pc._RTCPeerConnection__connect())  # type: ignore[attr-defined]
    other = asyncio.ensure_future(asyncio.sleep(0))
    try:
        closed = InvalidStateError("RTCIceTransport is closed")
        context = {"message": "Task exception was never retrieved", "exception": closed}
        loop.call_exception_handler(context | {"future": connecting})
        assert seen == []
        loop.call_exception_handler(context | {"future": other})
        loop.call_exception_handler(context | {"exception": RuntimeError("boom")})
        assert len(seen) == 2 and isinstance(seen[1], RuntimeError)
    finally:
        for task in (connecting, other):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await pc.close()
