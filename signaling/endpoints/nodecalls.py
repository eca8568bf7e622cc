"""Who may call a worker's internal routes: only its own node, over its Unix sockets.

The ``/internal/...`` routes (:mod:`mcu.signaling.endpoints.internalroutes`) start relays, admit
viewers and push stages. One rule decides who reaches them, in two places:

- a worker serves them only over its node's Unix sockets (a 0700 directory: the front and the
  workers, same host, same user); over TCP (a server that is no node of a cluster listens on
  TCP itself) they are answered 404, as the front answers clients;
- another node reaches them only through this node's front, which verifies the call's
  :data:`~mcu.contracts.cluster.NODE_CREDENTIAL_HEADER` (method, path with its query, exact
  body: :mod:`mcu.app.cluster.nodecalls`), refuses it with 403 when it does not verify, and
  passes a verified one to the worker with
  :data:`~mcu.contracts.cluster.CALLER_NODE_HEADER` naming the node that signed it.

So the credential is checked once, at the node's edge, and a worker believes the caller header
because nothing but its node's front can put it on a request that reaches the worker.
:func:`caller_node` names that node (None for a call from the node's own processes), so a
handler can check what a body claims about its sender.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from mcu.contracts.cluster import CALLER_NODE_HEADER, is_internal

__all__ = ["caller_node", "node_calls_middleware", "over_unix_socket"]

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def over_unix_socket(request: web.Request) -> bool:
    """Whether ``request`` came over a Unix socket (the node's own front or workers)."""
    transport = request.transport
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    return sock is not None and sock.family == socket.AF_UNIX


def caller_node(request: web.Request) -> str | None:
    """The other node an internal call comes from, as this node's front verified it; None for
    a call from this node's own front or workers."""
    return request.headers.get(CALLER_NODE_HEADER) or None


def node_calls_middleware() -> Callable[..., Awaitable[web.StreamResponse]]:
    """A middleware keeping the internal routes to the node's own Unix sockets."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_internal(request.path) and not over_unix_socket(request):
            logger.info("internal call %s %s over TCP refused", request.method, request.path)
            raise web.HTTPNotFound()
        return await handler(request)

    return guard
