"""Who may call a worker's internal routes: its own node over Unix sockets, other nodes signed.

The ``/internal/...`` routes (:mod:`mcu.signaling.endpoints.relays`) start relays, admit viewers
and push stages. Over the node's own Unix sockets (a 0700 directory: the front and the workers,
same host, same user) they are trusted as they always were. Reached over TCP, that is from
another node of the cluster, a call must carry :data:`~mcu.contracts.cluster.NODE_CREDENTIAL_HEADER`
made by :class:`~mcu.crypto.clustercalls.NodeCredentials` for this very method, path (with its
query, as sent) and body; anything else is answered ``403`` before a handler runs. A server that
is no node of a cluster has no credentials and refuses every internal call over TCP.

:func:`caller_node` then names the calling node (None over a Unix socket), so a handler can
check what a body claims about its sender against the node that signed it.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from mcu.contracts.cluster import INTERNAL_PREFIX, NODE_CREDENTIAL_HEADER
from mcu.crypto.clustercalls import ForgedCall, NodeCredentials

__all__ = ["caller_node", "node_calls_middleware", "over_unix_socket"]

logger = logging.getLogger(__name__)

_CALLER = web.RequestKey("mcu_caller_node", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def over_unix_socket(request: web.Request) -> bool:
    """Whether ``request`` came over a Unix socket (the node's own front or workers)."""
    transport = request.transport
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    return sock is not None and sock.family == socket.AF_UNIX


def caller_node(request: web.Request) -> str | None:
    """The node whose credential an internal call carried; None for a call over a Unix socket."""
    return request.get(_CALLER)


def _is_internal(path: str) -> bool:
    return path == INTERNAL_PREFIX or path.startswith(INTERNAL_PREFIX + "/")


def node_calls_middleware(
    credentials: NodeCredentials | None,
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A middleware guarding the internal routes (``credentials``: this node's, None when the
    server is no node of a cluster)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _is_internal(request.path) or over_unix_socket(request):
            return await handler(request)
        if credentials is None:
            raise web.HTTPForbidden(text="internal calls over the network need a cluster")
        # The exact bytes the caller signed; read once, aiohttp keeps them for the handler.
        body = await request.read()
        try:
            node = credentials.verify(
                request.headers.get(NODE_CREDENTIAL_HEADER),
                request.method,
                request.raw_path,
                body,
            )
        except ForgedCall as exc:
            logger.info("internal call %s %s refused: %s", request.method, request.path, exc)
            raise web.HTTPForbidden(text=f"refused: {exc}") from None
        request[_CALLER] = node
        return await handler(request)

    return guard
