"""Requests one node's front passes to another: signed on the way out, checked on the way in.

A front that is not a room's home passes the request on to the home node's front with
``X-Mcu-Node-Credential`` (:class:`mcu.crypto.clustercalls.NodeCredentials`, bound to the
method, the path with its query, and the body) and the client's address in
``X-Forwarded-For``. The receiving front trusts that address and ``X-Mcu-Join-Within`` only on a
request whose credential verifies; a request carrying a credential that does not is refused
with 403 and logged. This is the only place a node credential is verified: a verified call
for an internal route goes on to a worker with the verified node's id
(:mod:`mcu.app.cluster.internalcalls`), and workers serve internal routes only over their Unix
sockets (:mod:`mcu.signaling.endpoints.nodecalls`). Bodies are read whole (up to
:data:`MAX_NODE_BODY_BYTES`) on both sides so the credential binds them: a captured credential
cannot carry another body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from mcu.contracts.cluster import (
    FORWARDED_FOR_HEADER,
    JOIN_WITHIN_HEADER,
    NODE_CREDENTIAL_HEADER,
)
from mcu.crypto.clustercalls import ForgedCall, NodeCredentials

__all__ = [
    "MAX_NODE_BODY_BYTES",
    "NODE_CALL",
    "BodyTooLarge",
    "NodeCall",
    "node_call_middleware",
    "read_body",
    "trusted_join_within",
]

logger = logging.getLogger(__name__)

MAX_NODE_BODY_BYTES = 64 * 1024 * 1024
"""Largest body one node passes to another: above the largest room-scoped upload (a 50 MiB
document for the content channel); held in memory for the moment it crosses."""
_CHUNK_BYTES = 64 * 1024


class BodyTooLarge(Exception):
    """A request body over :data:`MAX_NODE_BODY_BYTES`."""


@dataclass(frozen=True)
class NodeCall:
    """A request another node passed on, its credential verified."""

    node: str
    "The calling node's id."
    body: bytes
    "The request body, read whole to check the credential."


NODE_CALL = web.RequestKey("node_call", NodeCall)
"Set on a request whose node credential verified (absent on every other request)."


async def read_body(request: web.BaseRequest) -> bytes:
    """The whole request body; :class:`BodyTooLarge` past :data:`MAX_NODE_BODY_BYTES`."""
    if request.content_length is not None and request.content_length > MAX_NODE_BODY_BYTES:
        raise BodyTooLarge()
    if not request.body_exists:
        return b""
    chunks: list[bytes] = []
    seen = 0
    async for chunk in request.content.iter_chunked(_CHUNK_BYTES):
        seen += len(chunk)
        if seen > MAX_NODE_BODY_BYTES:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> web.Response:
    return web.json_response(
        {
            "error": "too_large",
            "message": f"a request passed between nodes is at most {MAX_NODE_BODY_BYTES} bytes",
        },
        status=413,
    )


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def node_call_middleware(credentials: NodeCredentials) -> Middleware:
    """The front's middleware: a request with a node credential is verified (403 and a
    warning when it does not), then handled as coming from the client ``X-Forwarded-For``
    names, with :data:`NODE_CALL` set. Requests without one pass unchanged (the front replaces
    their ``X-Forwarded-For`` and drops the other internal headers)."""

    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        credential = request.headers.get(NODE_CREDENTIAL_HEADER)
        if credential is None:
            return await handler(request)
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return _too_large()
        try:
            node = credentials.verify(credential, request.method, request.raw_path, body)
        except ForgedCall as exc:
            logger.warning(
                "refused %s %s from %s: %s",
                request.method,
                request.path,
                request.remote,
                exc,
            )
            return web.json_response(
                {"error": "forbidden", "message": "node credential refused"}, status=403
            )
        forwarded = request.headers.get(FORWARDED_FOR_HEADER, "")
        address = forwarded.rsplit(",", 1)[-1].strip() or request.remote or "unknown"
        trusted = request.clone(remote=address)
        trusted[NODE_CALL] = NodeCall(node, body)
        return await handler(trusted)

    return middleware


def trusted_join_within(request: web.Request) -> float | None:
    """Seconds left to join that the calling node passed on (None on a client's request, or
    when the value is no finite non-negative number)."""
    if NODE_CALL not in request:
        return None
    try:
        left = float(request.headers.get(JOIN_WITHIN_HEADER, "nan"))
    except ValueError:
        return None
    return left if 0.0 <= left < float("inf") else None
