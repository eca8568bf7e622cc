"""The front's WebSocket pipe: frames copied both ways between a client and a worker."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

__all__ = ["pipe"]

# Close codes that must not be sent in a close frame (RFC 6455 7.4.1).
_RESERVED_CLOSE_CODES = frozenset({1004, 1005, 1006, 1015})


def _sendable(code: int | None, fallback: int) -> int:
    if code is None or code in _RESERVED_CLOSE_CODES or not 1000 <= code <= 4999:
        return fallback
    return code


_Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


async def _pump(source: _Socket, sink: _Socket) -> tuple[int | None, bytes]:
    """Copy frames from ``source`` to ``sink`` until ``source`` closes; returns its close code
    and reason. Each send waits for the sink to drain, so a slow side slows the other instead
    of queueing without bound."""
    while True:
        message = await source.receive()
        try:
            if message.type == WSMsgType.TEXT:
                await sink.send_str(message.data)
                continue
            if message.type == WSMsgType.BINARY:
                await sink.send_bytes(message.data)
                continue
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            return None, b""  # the sink is gone; its own pump reports how
        if message.type == WSMsgType.CLOSE:
            reason = message.extra if isinstance(message.extra, str) else ""
            return int(message.data), reason.encode()[:120]
        return source.close_code, b""


async def pipe(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Copy frames both ways until one side closes, then close the other with its code."""
    to_worker = asyncio.create_task(_pump(client, upstream))
    to_client = asyncio.create_task(_pump(upstream, client))
    try:
        done, _ = await asyncio.wait({to_worker, to_client}, return_when=asyncio.FIRST_COMPLETED)
        if to_client in done:
            code, reason = to_client.result()
            await client.close(code=_sendable(code, WSCloseCode.INTERNAL_ERROR), message=reason)
        else:
            code, reason = to_worker.result()
            await upstream.close(code=_sendable(code, WSCloseCode.GOING_AWAY), message=reason)
    finally:
        for task in (to_worker, to_client):
            task.cancel()
        await asyncio.gather(to_worker, to_client, return_exceptions=True)
