"""Internal calls from another node, passed by this node's front to one of its workers.

Another node reaches this node's workers only through the front: a call under
:data:`~mcu.contracts.cluster.INTERNAL_PREFIX` whose node credential the front's middleware
verified (:mod:`mcu.app.cluster.nodecalls`, over method, path and exact body) goes to the worker
:data:`~mcu.contracts.cluster.WORKER_HEADER` names (or the room's home worker) over its Unix
socket, with :data:`~mcu.contracts.cluster.CALLER_NODE_HEADER` naming the verified node. A
client's request for an internal route is answered 404 (it carries no credential; one whose
credential does not verify was already refused 403).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from yarl import URL

from mcu.app.cluster.nodecalls import NODE_CALL
from mcu.app.cluster.peers import WorkerPeers
from mcu.contracts.cluster import (
    CALLER_NODE_HEADER,
    ROOM_HOME_WORKER,
    WORKER_HEADER,
    internal_room,
    internal_worker,
)

__all__ = ["INTERNAL_CALL_TIMEOUT", "pass_internal_call"]

logger = logging.getLogger(__name__)

INTERNAL_CALL_TIMEOUT = 10.0
"Seconds a worker has to answer an internal call from another node (the caller waits 5 s)."

HomeOf = Callable[[str], Awaitable[int | None]]
"The home worker of a room on this node (None: the room is homed on another node now)."


async def pass_internal_call(
    request: web.Request, peers: WorkerPeers, home_of: HomeOf
) -> web.Response:
    """The worker's reply to a verified internal call from another node (404 to anything
    else, 503 when the room's home is another node now, 502 when the worker does not answer).

    Internal replies are small JSON documents: read whole, then passed back."""
    call = request.get(NODE_CALL)
    if call is None:
        raise web.HTTPNotFound()
    worker = internal_worker(request.headers.get(WORKER_HEADER), peers.count)
    if worker == ROOM_HOME_WORKER:
        room = internal_room(request.path)
        if room is None:
            raise web.HTTPNotFound(text="no room in the path to find a home worker for")
        worker = await home_of(room)
        if worker is None:
            return web.Response(status=503, text="the room is homed on another node\n")
    if worker is None:
        raise web.HTTPNotFound(text=f"no worker {request.headers.get(WORKER_HEADER)!r}")
    headers = {CALLER_NODE_HEADER: call.node}
    content_type = request.headers.get("Content-Type")
    if content_type is not None:
        headers["Content-Type"] = content_type
    try:
        async with peers.session(worker).request(
            request.method,
            URL("http://localhost" + request.raw_path, encoded=True),
            headers=headers,
            data=call.body if call.body else None,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=INTERNAL_CALL_TIMEOUT),
        ) as upstream:
            body = await upstream.read()
            return web.Response(
                status=upstream.status,
                body=body,
                headers={"Content-Type": upstream.headers.get("Content-Type", "text/plain")},
            )
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        logger.warning("worker %d unavailable for node %s: %r", worker, call.node, exc)
        return web.Response(status=502, text="worker unavailable, try again\n")
