"""The front process: the public listener, routing every request to a worker's socket.

WebSockets are routed by the ``room`` of their first frame (the join) to the room's home worker
and then piped both ways; HTTP requests are streamed through by
:func:`mcu.app.cluster.routing.route`. ``/metrics``, ``/healthz``, ``/readyz`` and ``GET
/api/rooms`` and ``GET /api/webhooks/undelivered`` answer for all workers together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, hdrs, web
from multidict import CIMultiDict
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError
from yarl import URL

from mcu import __version__
from mcu.app.cluster.directory import RoomDirectory
from mcu.app.cluster.internalcalls import pass_internal_call
from mcu.app.cluster.metricsmerge import merge_expositions
from mcu.app.cluster.node import VIEWER_HOME, ClusterNode, NodeUnavailable
from mcu.app.cluster.nodecalls import NODE_CALL, node_call_middleware, trusted_join_within
from mcu.app.cluster.peers import WorkerPeers, WorkerUnavailable
from mcu.app.cluster.proxying import (
    CHUNK_BYTES,
    CONNECT_TIMEOUT,
    NOT_PASSED,
    PROXY_TIMEOUT,
    SKIP_AUTO_HEADERS,
)
from mcu.app.cluster.roomlist import merge_room_lists
from mcu.app.cluster.routing import RouteKind, room_of_join, route
from mcu.app.cluster.supervisor import Supervisor
from mcu.app.cluster.viewerbalance import ViewerBalance
from mcu.app.cluster.webhooklist import merge_undelivered
from mcu.app.cluster.wspipe import pipe
from mcu.app.config import Config
from mcu.contracts.cluster import (
    FORWARDED_FOR_HEADER,
    HOME_NODE_HEADER,
    HOME_WORKER_HEADER,
    JOIN_WITHIN_HEADER,
    RoomExistsReply,
    is_internal,
    room_exists_path,
)
from mcu.infra.httpapi import MetricsAccess
from mcu.infra.runtimegauges import RuntimeCollector
from mcu.infra.socketlimits import SocketLimits, SocketLimitsCollector, refuse_websocket

__all__ = ["FRONT", "Front", "ViewerBalance", "create_front_app"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024**3
"""Largest request body passed on: a library upload (``library.uploads.MAX_UPLOAD_BYTES``),
streamed through, never held."""
MAX_FRAME_BYTES = 1024 * 1024
"Largest WebSocket frame accepted from a client (the workers' own limit)."
MAX_UPSTREAM_FRAME_BYTES = 16 * 1024 * 1024
"Largest WebSocket frame accepted from a worker."
PROBE_TIMEOUT = 2.0
"Seconds a worker has to answer a health, readiness or viewer-count probe."
METRICS_TIMEOUT = 5.0
"Seconds a worker has to answer a metrics scrape."
ROOM_LIST_TIMEOUT = 10.0
"Seconds a worker has to answer ``GET /api/rooms``."
VIEWER_POLL_SECONDS = 2.0
"How often the front reads every worker's viewer count."

_HOP_BY_HOP = NOT_PASSED
_SKIP_AUTO_HEADERS = SKIP_AUTO_HEADERS


Merge = Callable[[bytes, list[bytes]], bytes | None]
"Joins the first worker's reply body with the others' into one (None: the first is unusable)."


@dataclass(frozen=True)
class WorkerReply:
    """One worker's whole reply to a request the front asked of every worker."""

    status: int
    "HTTP status."
    reason: str | None
    "HTTP reason phrase."
    headers: CIMultiDict[str]
    "Reply headers, hop-by-hop ones removed."
    body: bytes
    "The body as sent (workers are asked not to compress it)."


class _WorkersUp(Collector):
    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "mcu_front_worker_up",
            "Whether a worker process is running, by index.",
            labels=["index"],
        )
        restarts = GaugeMetricFamily(
            "mcu_front_worker_restarts",
            "Restarts of a worker after it exited, by index.",
            labels=["index"],
        )
        for worker in self._supervisor.workers:
            up.add_metric([str(worker.index)], 1.0 if worker.running and worker.ready else 0.0)
            restarts.add_metric([str(worker.index)], worker.restarts)
        yield up
        yield restarts


class Front:
    """The front's state: workers, room homes, viewer balance and its own metrics."""

    def __init__(
        self,
        config: Config,
        supervisor: Supervisor,
        peers: WorkerPeers,
        directory: RoomDirectory,
        node: ClusterNode | None = None,
    ) -> None:
        self.config = config
        self.node = node
        "This node of a cluster (None: a single node)."

        self.supervisor = supervisor
        self.peers = peers
        self.directory = directory
        token = config.metrics_token
        self.metrics_access = MetricsAccess(token.get_secret_value().encode() if token else None)
        self.count = peers.count
        self.viewers = ViewerBalance(self.count)
        self.started = time.monotonic()
        self.shutting_down = False
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.registry.register(_WorkersUp(supervisor))
        self.registry.register(RuntimeCollector())
        self.sockets = SocketLimits(
            config.max_websockets_per_address, config.max_websockets, config.join_timeout
        )
        "Every client WebSocket passes the front: the caps and the join deadline hold here."
        self.registry.register(SocketLimitsCollector(self.sockets))
        self._poller: asyncio.Task[None] | None = None

    async def home_of_join(self, text: str) -> int:
        """The worker for a WebSocket whose first frame is ``text``: the home of the joined
        room, or worker 0 when it is no join (that worker answers the protocol error)."""
        room = room_of_join(text)
        return 0 if room is None else await self.home_of(room)

    async def home_of(self, room: str) -> int:
        """The home worker of ``room``. A room gets a home only once a worker confirms that it
        exists; requests for unknown rooms go to worker 0, which refuses them, and leave no
        trace in the directory however many there are."""
        home = await self.directory.lookup(room)
        if home is not None:
            return home
        if not await self.room_exists(room):
            return 0
        return await self.directory.home(room)

    async def node_home_of(self, room: str) -> int | None:
        """The home worker of ``room`` for another node's internal call: None when the room's
        home is another node (that node's call came here while it moved)."""
        assert self.node is not None
        try:
            await self.node.place(room, lambda: self.room_exists(room), forwarded=True)
        except NodeUnavailable:
            return None
        return await self.home_of(room)

    async def room_exists(self, room: str) -> bool:
        """Whether ``room`` exists, as the first worker that answers tells."""
        for index in range(self.count):  # the store is shared: any running worker can tell
            status, body = await self._probe(index, room_exists_path(room))
            if status != 200:
                continue
            try:
                return RoomExistsReply.model_validate(body).exists
            except ValidationError:
                logger.warning("worker %d sent a malformed RoomExistsReply: %r", index, body)
        return False

    async def poll_viewers(self) -> None:
        """Read every worker's viewer count every ``VIEWER_POLL_SECONDS`` (until cancelled)."""
        while True:
            results = await asyncio.gather(*(self._probe(i, "/healthz") for i in range(self.count)))
            for index, (status, body) in enumerate(results):
                viewers: int | None = None
                if status == 200 and isinstance(body, dict):
                    value = body.get("viewers", 0)
                    viewers = value if isinstance(value, int) else 0
                self.viewers.update(index, viewers)
            await asyncio.sleep(VIEWER_POLL_SECONDS)

    async def _probe(
        self, worker: int, path: str, timeout: float = PROBE_TIMEOUT
    ) -> tuple[int, Any]:
        """``GET path`` on ``worker``: (status, JSON) or (0, error text) when unreachable."""
        if not self.supervisor.workers[worker].running:
            return 0, "not running"
        try:
            return await self.peers.request(worker, "GET", path, timeout=timeout)
        except WorkerUnavailable as exc:
            return 0, str(exc.__cause__ or exc)

    async def health(self) -> dict[str, Any]:
        """The front's ``/healthz`` document."""
        results = await asyncio.gather(*(self._probe(i, "/healthz") for i in range(self.count)))
        workers: list[dict[str, Any]] = []
        totals = {"rooms": 0, "participants": 0, "viewers": 0}
        healthy = True
        for worker, (status, body) in zip(self.supervisor.workers, results, strict=True):
            entry: dict[str, Any] = {"index": worker.index, "pid": worker.pid}
            if status == 200 and isinstance(body, dict):
                entry |= body
                for key in totals:
                    value = body.get(key, 0)
                    totals[key] += value if isinstance(value, int) else 0
            else:
                healthy = False
                error = body if isinstance(body, str) else f"/healthz answered {status}"
                entry |= {"status": "down", "error": error}
            entry |= {"index": worker.index, "pid": worker.pid, "restarts": worker.restarts}
            workers.append(entry)
        return {
            "status": "ok" if healthy and not self.shutting_down else "degraded",
            "version": __version__,
            "worker": "front",
            "uptime_seconds": round(time.monotonic() - self.started, 3),
            "workers": workers,
        } | totals

    async def ready(self) -> tuple[bool, list[dict[str, Any]]]:
        """Whether every worker runs and is ready, with each worker's state."""
        results = await asyncio.gather(*(self._probe(i, "/readyz") for i in range(self.count)))
        states = [
            {"index": i, "ready": status == 200}
            | ({"status": body.get("status")} if isinstance(body, dict) else {"error": body})
            for i, (status, body) in enumerate(results)
        ]
        return all(s["ready"] for s in states) and not self.shutting_down, states

    async def metrics(self) -> bytes:
        """Every worker's exposition and the front's own, merged."""
        results = await asyncio.gather(
            *(self._scrape(i) for i in range(self.count)), return_exceptions=False
        )
        parts = {str(i): text for i, text in enumerate(results) if text is not None}
        parts["front"] = generate_latest(self.registry).decode()
        return merge_expositions(parts)

    async def room_list(self, path: str, headers: Mapping[str, str]) -> WorkerReply | None:
        """``GET path`` (``/api/rooms`` and its query) asked of every running worker at once:
        the first worker's reply, its room list carrying the live counts of all workers that
        answered; None when no worker answered."""
        return await self.gathered(path, headers, merge_room_lists)

    async def gathered(
        self, path: str, headers: Mapping[str, str], merge: Merge
    ) -> WorkerReply | None:
        """``GET path`` asked of every running worker at once: the first worker's reply, its
        body joined by ``merge`` with the other workers' (``/api/rooms``, the webhook listing);
        None when no worker answered."""
        replies = await asyncio.gather(
            *(self._fetch(i, path, headers, ROOM_LIST_TIMEOUT) for i in range(self.count))
        )
        answered = [(i, r) for i, r in enumerate(replies) if r is not None]
        if not answered:
            return None
        first, base = answered[0]
        if base.status != 200:
            return base  # a refusal (401, ...) is the same on every worker: pass it on
        others: list[bytes] = []
        for index, reply in answered[1:]:
            if reply.status == 200:
                others.append(reply.body)
            else:
                logger.warning(
                    "worker %d answered %d to %s; its part is left out",
                    index,
                    reply.status,
                    path,
                )
        merged = merge(base.body, others)
        if merged is None:
            logger.warning("worker %d sent no list for %s; passed on as sent", first, path)
            return base
        return WorkerReply(base.status, base.reason, base.headers, merged)

    async def _fetch(
        self, worker: int, path: str, headers: Mapping[str, str], timeout: float
    ) -> WorkerReply | None:
        """``GET path`` on ``worker``, read whole; None (logged) when it did not answer."""
        if not self.supervisor.workers[worker].running:
            logger.warning("worker %d is not running; %s answered without it", worker, path)
            return None
        try:
            async with self.peers.session(worker).get(
                URL("http://localhost" + path, encoded=True),
                headers=headers,
                skip_auto_headers=_SKIP_AUTO_HEADERS,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                body = await response.read()
                kept: CIMultiDict[str] = CIMultiDict(
                    (k, v) for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP
                )
                return WorkerReply(response.status, response.reason, kept, body)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            logger.warning("worker %d did not answer %s: %r", worker, path, exc)
            return None

    async def _scrape(self, worker: int) -> str | None:
        if not self.supervisor.workers[worker].running:
            return None
        try:
            async with self.peers.session(worker).get(
                "http://localhost/metrics", timeout=aiohttp.ClientTimeout(total=METRICS_TIMEOUT)
            ) as response:
                if response.status != 200:
                    return None
                return await response.text()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            logger.warning("metrics of worker %d unavailable: %r", worker, exc)
            return None

    def start(self) -> None:
        """Start polling the workers' viewer counts."""
        self._poller = asyncio.create_task(self.poll_viewers())

    async def stop(self) -> None:
        """Stop polling."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller


FRONT = web.AppKey("front", Front)


def _client_address(request: web.BaseRequest) -> str:
    return request.remote or "unknown"


# --- WebSocket ------------------------------------------------------------------------------


async def websocket_proxy(request: web.Request) -> web.StreamResponse:
    """``GET /ws``: refused (429, 503) past the socket caps; else routed by the first frame's
    room and piped to the home worker, which closes it if it has not joined by the deadline the
    front started (passed on in ``X-Mcu-Join-Within``)."""
    front = request.app[FRONT]
    address = _client_address(request)
    refusal = refuse_websocket(front.sockets, address)
    if refusal is not None:
        return refusal
    try:
        return await _websocket_proxy(request, front)
    finally:
        front.sockets.release(address)


async def _websocket_proxy(request: web.Request, front: Front) -> web.WebSocketResponse:
    loop = asyncio.get_running_loop()
    sockets = front.sockets
    deadline = loop.time() + sockets.join_timeout
    passed = trusted_join_within(request)  # the node that passed it on started the deadline
    if passed is not None:
        deadline = min(deadline, loop.time() + passed)
    client = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_FRAME_BYTES)
    await client.prepare(request)
    try:
        # Around the whole receive: aiohttp's own timeout restarts at every ping and pong.
        async with asyncio.timeout_at(deadline):
            first = await client.receive()
    except TimeoutError:
        sockets.join_timed_out()
        reason = sockets.join_timeout_reason.encode()
        await client.close(code=WSCloseCode.POLICY_VIOLATION, message=reason)
        return client
    if first.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
        return client  # closed before saying anything
    room = room_of_join(first.data) if first.type == WSMsgType.TEXT else None
    try:
        node = (
            None
            if room is None or front.node is None
            else await front.node.home_elsewhere(room, request, front.room_exists)
        )
    except NodeUnavailable:
        await client.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"server busy; try again")
        return client
    worker = 0 if room is None or node is not None else await front.home_of(room)
    try:
        if node is not None and front.node is not None:
            where = f"node {node.node}"
            connecting = front.node.open_websocket(
                node, _client_address(request), deadline - loop.time()
            )
        else:
            where = f"worker {worker}"
            connecting = front.peers.session(worker).ws_connect(
                "http://localhost/ws",
                headers={
                    FORWARDED_FOR_HEADER: _client_address(request),
                    HOME_WORKER_HEADER: str(worker),
                    JOIN_WITHIN_HEADER: f"{max(0.0, deadline - loop.time()):.3f}",
                },
                max_msg_size=MAX_UPSTREAM_FRAME_BYTES,
            )
        upstream = await asyncio.wait_for(connecting, CONNECT_TIMEOUT)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        logger.warning("%s unavailable for a WebSocket: %r", where, exc)
        await client.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"server busy; try again")
        return client
    try:
        if first.type == WSMsgType.TEXT:
            await upstream.send_str(first.data)
        else:
            await upstream.send_bytes(first.data)
        await pipe(client, upstream)
    except (ConnectionError, aiohttp.ClientError) as exc:
        logger.debug("WebSocket to %s ended: %r", where, exc)
    finally:
        await upstream.close()
        if not client.closed:
            await client.close(code=WSCloseCode.INTERNAL_ERROR, message=b"server unavailable")
    return client


# --- HTTP -----------------------------------------------------------------------------------


class _LimitedBody:
    """The request body as an async iterator of chunks, refusing more than ``limit`` bytes."""

    def __init__(self, content: aiohttp.StreamReader, limit: int) -> None:
        self.content = content
        self.limit = limit
        self.too_large = False

    async def chunks(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self.content.iter_chunked(CHUNK_BYTES):
            seen += len(chunk)
            if seen > self.limit:
                self.too_large = True
                raise ValueError("request body too large")
            yield chunk


def _too_large() -> web.Response:
    return web.Response(status=413, text=f"request body over {MAX_BODY_BYTES} bytes\n")


def _forward_headers(headers: CIMultiDict[str] | Any, remote: str) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in headers.items():
        if key.lower() not in _HOP_BY_HOP:
            out.add(key, value)
    out[FORWARDED_FOR_HEADER] = remote
    return out


async def _choose_worker(front: Front, request: web.Request) -> tuple[int | None, dict[str, str]]:
    decision = route(request.method, request.path, front.count)
    if decision.kind is RouteKind.NOT_FOUND:
        return None, {}
    if decision.kind is RouteKind.WORKER:
        assert decision.worker is not None
        return decision.worker, {}
    assert decision.room is not None
    home = await front.home_of(decision.room)
    home_node = request.get(VIEWER_HOME)
    if home_node is not None:  # a room homed on another node: ``home`` is this node's entry
        return front.viewers.pick(), {HOME_NODE_HEADER: home_node, HOME_WORKER_HEADER: str(home)}
    if decision.kind is RouteKind.HOME:
        return home, {HOME_WORKER_HEADER: str(home)}
    return front.viewers.pick(), {HOME_WORKER_HEADER: str(home)}


async def http_proxy(request: web.Request) -> web.StreamResponse:
    """Every other request: streamed to the worker :func:`route` names, the reply streamed back
    (or to the room's home node, when that is another)."""
    front = request.app[FRONT]
    if front.node is not None:
        if is_internal(request.path):  # another node's call (404 without a credential)
            return await pass_internal_call(request, front.peers, front.node_home_of)
        passed = await front.node.pass_to_home(request, front.room_exists)
        if passed is not None:
            return passed
    worker, extra = await _choose_worker(front, request)
    if worker is None:
        raise web.HTTPNotFound()
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _too_large()
    headers = _forward_headers(request.headers, _client_address(request))
    headers.update(extra)
    call = request.get(NODE_CALL)  # its body was read to check its credential
    body = _LimitedBody(request.content, MAX_BODY_BYTES) if request.body_exists else None
    response: web.StreamResponse | None = None
    try:
        async with front.peers.session(worker).request(
            request.method,
            URL("http://localhost" + request.raw_path, encoded=True),
            headers=headers,
            data=call.body if call is not None else body.chunks() if body is not None else None,
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            allow_redirects=False,
            timeout=PROXY_TIMEOUT,
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    response.headers.add(key, value)
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(CHUNK_BYTES):
                await response.write(chunk)
            await response.write_eof()
            return response
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        if body is not None and body.too_large:
            return _too_large()
        if response is None or not response.prepared:
            logger.warning("worker %d unavailable for %s: %r", worker, request.method, exc)
            return web.Response(status=502, text="server unavailable, try again\n")
        # Part of the reply was sent: cut the connection so the client sees a broken reply.
        logger.warning("reply from worker %d broke off: %r", worker, exc)
        if request.transport is not None:
            request.transport.close()
        return response


async def room_list_handler(request: web.Request) -> web.Response:
    """``GET /api/rooms``: worker 0's list (or the next worker's while it is down), each
    room's live ``participants`` taken from whichever worker is its home."""
    return await _gathered_reply(request, merge_room_lists)


async def undelivered_handler(request: web.Request) -> web.Response:
    """``GET /api/webhooks/undelivered``: every worker's webhook events not delivered (each
    worker sends the events of the rooms it is home to)."""
    return await _gathered_reply(request, merge_undelivered)


async def _gathered_reply(request: web.Request, merge: Merge) -> web.Response:
    front = request.app[FRONT]
    headers = _forward_headers(request.headers, _client_address(request))
    # No body goes on, and the merge needs the JSON uncompressed.
    for name in ("Content-Length", "Content-Type", "Accept-Encoding"):
        headers.popall(name, None)
    reply = await front.gathered(request.raw_path, headers, merge)
    if reply is None:
        return web.Response(status=502, text="server unavailable, try again\n")
    out = reply.headers.copy()
    out.popall("Content-Length", None)  # the merged body has its own length
    return web.Response(status=reply.status, reason=reply.reason, headers=out, body=reply.body)


async def health_handler(request: web.Request) -> web.Response:
    """``GET /healthz``: the front and every worker's ``/healthz``, with totals (only its
    status without the metrics token, when one is configured)."""
    front = request.app[FRONT]
    health = await front.health()
    if not front.metrics_access.allows(request):
        return web.json_response({"status": health["status"]})
    return web.json_response(health)


async def readiness_handler(request: web.Request) -> web.Response:
    """``GET /readyz``: 200 when every worker is up and ready, else 503."""
    ready, workers = await request.app[FRONT].ready()
    status = (
        "ready" if ready else ("shutting_down" if request.app[FRONT].shutting_down else "degraded")
    )
    return web.json_response({"status": status, "workers": workers}, status=200 if ready else 503)


async def metrics_handler(request: web.Request) -> web.Response:
    """``GET /metrics``: every worker's metrics and the front's, labelled ``worker``."""
    front = request.app[FRONT]
    if not front.metrics_access.allows(request):
        return front.metrics_access.refuse()
    body = await front.metrics()
    return web.Response(
        body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )


def create_front_app(front: Front) -> web.Application:
    """The front's application (the viewer poll runs while it is started)."""
    middlewares = [] if front.node is None else [node_call_middleware(front.node.credentials)]
    app = web.Application(client_max_size=MAX_FRAME_BYTES, middlewares=middlewares)
    app[FRONT] = front
    app.router.add_get("/ws", websocket_proxy)
    app.router.add_get("/healthz", health_handler)
    app.router.add_get("/readyz", readiness_handler)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/api/rooms", room_list_handler, allow_head=False)
    app.router.add_get("/api/webhooks/undelivered", undelivered_handler, allow_head=False)
    app.router.add_route(hdrs.METH_ANY, "/{tail:.*}", http_proxy)

    async def startup(app: web.Application) -> None:
        front.start()

    async def cleanup(app: web.Application) -> None:
        await front.stop()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app
