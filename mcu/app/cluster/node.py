"""This node among the others: its registration and heartbeat, and requests for rooms homed on
another node.

The front asks :meth:`ClusterNode.place` where a room-scoped request belongs. When another node
is the room's home, a WebSocket join is piped to that node's front (:meth:`open_websocket`),
other HTTP is passed through (:meth:`pass_on`), and a new WHEP viewer is served here as an edge
of the home (:data:`VIEWER_HOME` set for the front), or answered ``307 Temporary Redirect`` to
the same path on another node (:meth:`redirect`, RFC 9725) when :class:`ViewerCascade` says so.
A WHEP session is served where it was made (its ``Location`` is absolute there), never passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from redis.exceptions import RedisError
from yarl import URL

from mcu.app.cluster.homes import Placement, PlacementKind, RoomHomes
from mcu.app.cluster.nodecalls import NODE_CALL, BodyTooLarge, read_body
from mcu.app.cluster.proxying import (
    CHUNK_BYTES,
    CONNECT_TIMEOUT,
    NOT_PASSED,
    PROXY_TIMEOUT,
    SKIP_AUTO_HEADERS,
)
from mcu.app.cluster.registry import NodeRegistry
from mcu.app.cluster.registrytrust import RegistryTrust
from mcu.app.cluster.routing import RouteKind, room_of_request, route
from mcu.contracts.cluster import (
    FORWARDED_FOR_HEADER,
    JOIN_WITHIN_HEADER,
    NODE_CREDENTIAL_HEADER,
)
from mcu.contracts.nodes import HEARTBEAT_S, NodeRecord
from mcu.crypto.clustercalls import NodeCredentials

__all__ = ["VIEWER_HOME", "ClusterNode", "NoCascade", "NodeUnavailable", "ViewerCascade"]

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 16 * 1024 * 1024
"Largest WebSocket frame accepted from another node (as from a worker)."
_TIMEOUT = PROXY_TIMEOUT
_CHUNK_BYTES = CHUNK_BYTES
# Host and Content-Length are the new connection's own (aiohttp sets them).
_NOT_PASSED = NOT_PASSED | {"host", "content-length"}
_SKIP_AUTO_HEADERS = SKIP_AUTO_HEADERS


class NodeUnavailable(Exception):
    """Where a room lives cannot be told now (Redis does not answer, or its home just went):
    the client is asked to try again."""


class ViewerCascade(Protocol):
    """Where a new WHEP viewer of a room homed on another node is served: here, by relaying the
    stage from the home (:mod:`mcu.app.cluster.cascade`), or on another node."""

    async def viewer_node(self, room: str, home: NodeRecord) -> NodeRecord | None:
        """None: this node serves ``room``'s new viewer; else the node to redirect it to."""
        ...


class NoCascade:
    """No node serves another's viewers: each is redirected to the room's home."""

    async def viewer_node(self, room: str, home: NodeRecord) -> NodeRecord | None:
        """The home."""
        return home


VIEWER_HOME = web.RequestKey("mcu_viewer_home", str)
"""Set on a new WHEP viewer this node serves for a room homed on another node: that node's id
(the front passes it to the worker in ``X-Mcu-Home-Node``)."""


Health = Callable[[], Awaitable[Mapping[str, Any]]]
"The front's ``/healthz`` document (live rooms, participants and viewers of all workers)."


class ClusterNode:
    """This node: registered in Redis while it runs, and the way to the other nodes."""

    def __init__(
        self,
        *,
        node_id: str,
        url: str,
        workers: int,
        registry: NodeRegistry,
        homes: RoomHomes,
        credentials: NodeCredentials,
        cascade: ViewerCascade | None = None,
    ) -> None:
        self.node_id = node_id
        self.url = url
        self.workers = workers
        self.registry = registry
        self.homes = homes
        self.credentials = credentials
        self.cascade: ViewerCascade = cascade or NoCascade()
        self.trust = RegistryTrust()
        "Whether a node missing from the registry is dead (not while Redis has just returned)."
        self.started = time.time()
        self.latest: NodeRecord | None = None
        "This node's entry as its last heartbeat wrote it (its load then)."
        self._session: aiohttp.ClientSession | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The client session to other nodes (bodies as sent, no cookies)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        return self._session

    # -- registry --------------------------------------------------------------------------

    def record(self, health: Mapping[str, Any]) -> NodeRecord:
        """This node's registry entry with the load in ``health``."""

        def count(key: str) -> int:
            value = health.get(key, 0)
            return value if isinstance(value, int) and value >= 0 else 0

        return NodeRecord(
            node=self.node_id,
            url=self.url,
            workers=self.workers,
            rooms=count("rooms"),
            participants=count("participants"),
            viewers=count("viewers"),
            load=round(os.getloadavg()[0], 2),
            started=self.started,
            updated=time.time(),
        )

    async def start(self, health: Health) -> None:
        """Register (raises :class:`~mcu.app.cluster.registry.NodeClash` on a duplicate id, and
        redis' errors when Redis does not answer) and start the heartbeat."""
        self.latest = self.record(await health())
        await self.registry.register(self.latest)
        logger.info("node %s registered at %s", self.node_id, self.url)
        self._heartbeat = asyncio.create_task(self._beat(health))

    async def _beat(self, health: Health) -> None:
        failing = False
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                self.latest = self.record(await health())
                await self.registry.beat(self.latest)
                await self.homes.refresh()
            except (RedisError, OSError) as exc:
                self.trust.failed()
                if not failing:  # once per outage, not every second
                    logger.warning("heartbeat to Redis failed (retrying every second): %r", exc)
                failing = True
            else:
                self.trust.succeeded(time.monotonic())
                if failing:
                    logger.info(
                        "heartbeat to Redis works again; rooms of nodes still missing from the "
                        "registry are taken over after %.0f s",
                        self.trust.settle_s,
                    )
                failing = False

    async def leave(self) -> None:
        """Stop the heartbeat, give up this node's homes and leave the registry (shutting
        down: other nodes take this node's rooms from now on)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        try:
            await self.homes.release()
            await self.registry.leave(self.node_id)
        except (RedisError, OSError) as exc:
            logger.warning("could not leave the registry (the entry expires by itself): %r", exc)

    async def close(self) -> None:
        """Close the connections to other nodes and to Redis (after :meth:`leave`)."""
        if self._session is not None:
            await self._session.close()
        await self.registry.redis.aclose()

    # -- routing ---------------------------------------------------------------------------

    async def place(
        self, room: str, exists: Callable[[], Awaitable[bool]], *, forwarded: bool
    ) -> Placement:
        """Where ``room``'s request is served. A request another node ``forwarded`` here is
        never passed on again (two nodes disagreeing for a moment must not bounce it):
        :class:`NodeUnavailable` instead, as when Redis does not answer."""
        try:
            placement = await self.homes.place(
                room, exists, take_over=self.trust.trusted(time.monotonic())
            )
        except (RedisError, OSError, LookupError) as exc:
            logger.warning("home of room %s unknown: %r", room, exc)
            raise NodeUnavailable(str(exc)) from exc
        if placement.kind is PlacementKind.THERE and forwarded:
            assert placement.node is not None
            logger.warning(
                "room %s passed here by another node, but its home is %s",
                room,
                placement.node.node,
            )
            raise NodeUnavailable("the room's home moved")
        return placement

    async def home_elsewhere(
        self, room: str, request: web.Request, exists: Callable[[str], Awaitable[bool]]
    ) -> NodeRecord | None:
        """The other node that is home to ``room`` (None: served here; ``exists`` tells whether
        a room exists); raises :class:`NodeUnavailable` when that cannot be told now."""
        placement = await self.place(room, lambda: exists(room), forwarded=NODE_CALL in request)
        return placement.node if placement.kind is PlacementKind.THERE else None

    async def pass_to_home(
        self, request: web.Request, exists: Callable[[str], Awaitable[bool]]
    ) -> web.StreamResponse | None:
        """The reply to a request for a room homed on another node: passed on to it, or a new
        WHEP viewer redirected there (503 when the home cannot be told now); None when the
        request is served here."""
        room = room_of_request(request.method, request.path)
        if room is None or (request.path.startswith("/whep/") and request.method != "POST"):
            return None  # a WHEP session lives on the node that made it, wherever its room
        try:
            node = await self.home_elsewhere(room, request, exists)
        except NodeUnavailable:
            return web.Response(status=503, text="try again\n", headers={"Retry-After": "1"})
        if node is None:
            return None
        if route(request.method, request.path, 1).kind is RouteKind.NEW_VIEWER:
            target = await self.cascade.viewer_node(room, node)
            if target is None:
                request[VIEWER_HOME] = node.node
                return None
            return self.redirect(request, target)
        return await self.pass_on(request, node)

    def redirect(self, request: web.Request, node: NodeRecord) -> web.Response:
        """``307`` to the same path and query on ``node`` (a new WHEP viewer, RFC 9725), with
        the CORS headers a browser needs to follow it from another origin."""
        return web.Response(
            status=307,
            headers={
                "Location": node.url + request.raw_path,
                "Cache-Control": "no-store",
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Expose-Headers": "Location, Link",
            },
        )

    def _headers(self, method: str, path: str, body: bytes, client: str) -> dict[str, str]:
        return {
            NODE_CREDENTIAL_HEADER: self.credentials.sign(method, path, body),
            FORWARDED_FOR_HEADER: client,
        }

    async def open_websocket(
        self, node: NodeRecord, client: str, join_within: float
    ) -> aiohttp.ClientWebSocketResponse:
        """A WebSocket to ``node``'s front for a client at ``client`` with ``join_within``
        seconds left to join; raises ``aiohttp.ClientError``/``OSError``/``TimeoutError``."""
        url = URL(node.url + "/ws")
        url = url.with_scheme("wss" if url.scheme == "https" else "ws")
        headers = self._headers("GET", "/ws", b"", client)
        headers[JOIN_WITHIN_HEADER] = f"{max(0.0, join_within):.3f}"
        return await asyncio.wait_for(
            self.session.ws_connect(url, headers=headers, max_msg_size=MAX_FRAME_BYTES),
            CONNECT_TIMEOUT,
        )

    async def pass_on(self, request: web.Request, node: NodeRecord) -> web.StreamResponse:
        """``request`` passed to ``node``'s front and its reply streamed back (502 when the
        node does not answer, 413 for a body over the limit between nodes)."""
        call = request.get(NODE_CALL)
        try:
            body = call.body if call is not None else await read_body(request)
        except BodyTooLarge:
            return web.json_response(
                {"error": "too_large", "message": "body too large to pass between nodes"},
                status=413,
            )
        headers: CIMultiDict[str] = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in _NOT_PASSED
        )
        headers.update(
            self._headers(request.method, request.raw_path, body, request.remote or "unknown")
        )
        response: web.StreamResponse | None = None
        try:
            async with self.session.request(
                request.method,
                URL(node.url + request.raw_path, encoded=True),
                headers=headers,
                data=body if body else None,
                skip_auto_headers=_SKIP_AUTO_HEADERS,
                allow_redirects=False,
                timeout=_TIMEOUT,
            ) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for key, value in upstream.headers.items():
                    if key.lower() not in _NOT_PASSED or key.lower() == "content-length":
                        response.headers.add(key, value)
                await response.prepare(request)
                async for chunk in upstream.content.iter_chunked(_CHUNK_BYTES):
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            if response is None or not response.prepared:
                logger.warning("node %s unavailable for %s: %r", node.node, request.method, exc)
                return web.Response(status=502, text="server unavailable, try again\n")
            logger.warning("reply from node %s broke off: %r", node.node, exc)
            if request.transport is not None:
                request.transport.close()
            return response
