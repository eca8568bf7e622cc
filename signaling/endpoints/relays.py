"""A room's stage relayed between workers.

A room lives on one worker, its *home*: participants, floor, recording and the publishers' peer
connections are there. A lecture's WHEP viewers are spread over every worker; a worker that is not
the home (an *edge*) asks the home for a relay, receives the stage's RTP over loopback as plain
RTP (:mod:`mcu.sfu.relay`, never decoded), feeds it into local producers and forwards them to its
own viewers exactly as the home does. Control goes over the workers' internal HTTP sockets:

- edge → home ``POST /internal/rooms/{room}/relays`` ``{"worker", "host", "port"}`` →
  ``{"relay": [host, port], "stage": STAGE}``; ``DELETE .../relays/{worker}`` when the edge's
  last viewer of the room leaves; ``POST .../viewers`` ``{"worker", "count", "watchers": [{"id",
  "name"}]}`` as they change (a meeting's participants see who watches);
  ``POST .../admit`` ``{"token", "address"}`` → ``{"own", "role", "refused"}`` (a WHEP viewer's
  credential judged at the home, which keeps the room's wrong-password counts).
- home → edge ``POST /internal/rooms/{room}/stage`` STAGE on every change of the stage.

Across hosts the same messages would go over TCP and the relay over the LAN; the directory saying
which room lives where would then be shared (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from mcu.contracts.cluster import ROOM_EXISTS_PATH
from mcu.crypto.tokens import InviteSigner
from mcu.media import TrackSource
from mcu.sfu.producer import Producer
from mcu.sfu.relay import (
    RelayEndpoint,
    RelayLink,
    assign_ssrc,
    codec_from_description,
    stream_description,
)
from mcu.sfu.stage import Stage
from mcu.signaling.rooms.admission import Admission, Refused, admit
from mcu.signaling.rooms.errors import UnknownRoom
from mcu.signaling.rooms.session import Room, Rooms
from mcu.signaling.rooms.store import RoomStore
from mcu.signaling.rooms.throttle import LoginThrottle

logger = logging.getLogger(__name__)

# How long a worker waits for another one to answer before giving up on the request.
PEER_TIMEOUT = 5.0


class Peers(Protocol):
    """Requests to the other workers of this server."""

    async def request(
        self,
        worker: int,
        method: str,
        path: str,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send a JSON request; the status and the JSON reply (None if there was none)."""
        ...


class RelayError(Exception):
    """Another worker could not be reached or refused (the viewer gets 503)."""


async def _call(peers: Peers, worker: int, method: str, path: str, body: Any = None) -> Any:
    try:
        status, reply = await asyncio.wait_for(
            peers.request(worker, method, path, json=body), PEER_TIMEOUT
        )
    except Exception as exc:
        raise RelayError(f"worker {worker} did not answer {method} {path}: {exc}") from exc
    if status >= 300:
        raise RelayError(f"worker {worker} answered {status} to {method} {path}: {reply}")
    return reply


# -- the home side ---------------------------------------------------------------------------


@dataclass
class _Feed:
    """One edge worker receiving one room."""

    room: Room
    worker: int
    link: RelayLink
    unlisten: Callable[[], None]
    forwarded: dict[int, int] = field(default_factory=dict)
    "Relay SSRC by id() of the producer forwarded."
    pushing: asyncio.Task[None] | None = None
    dirty: bool = False


class HomeRelays:
    """This worker's rooms, relayed to the edges that have viewers of them."""

    def __init__(
        self, worker: int, peers: Peers, endpoint: RelayEndpoint, rooms: Rooms, store: RoomStore
    ) -> None:
        self.worker = worker
        self.peers = peers
        self.endpoint = endpoint
        self.rooms = rooms
        self.store = store
        self._feeds: dict[tuple[str, int], _Feed] = {}
        self._ssrcs: dict[int, tuple[Producer, int]] = {}

    def _ssrc(self, producer: Producer) -> int:
        known = self._ssrcs.get(id(producer))
        if known is None or known[0] is not producer:
            known = self._ssrcs[id(producer)] = (producer, assign_ssrc())
        return known[1]

    def describe(self, stage: Stage) -> dict[str, Any]:
        """The STAGE message: every stream with its relay SSRC and codec."""
        return {
            "video": [stream_description(p, self._ssrc(p)) for p in stage.video],
            "audio": [stream_description(p, self._ssrc(p)) for p in stage.audio],
        }

    async def add(self, room_id: str, worker: int, host: str, port: int) -> dict[str, Any]:
        """An edge asks for a room: start relaying its stage; returns the current STAGE.

        Raises :class:`UnknownRoom` when the store has no such room.
        """
        room = self.rooms.rooms.get(room_id)
        if room is None:
            record = await self.store.get(room_id)
            if record is None:
                raise UnknownRoom(f"no room {room_id!r}")
            room = self.rooms.get_or_create(record.id, record.title, record.kind)
        key = (room_id, worker)
        old = self._feeds.pop(key, None)
        if old is not None:
            self._stop(old)
        link = self.endpoint.link((host, port))
        feed = _Feed(room, worker, link, lambda: None)
        feed.unlisten = room.stage.listen(lambda: self._stage_changed(feed))
        self._feeds[key] = feed

        async def closed_by_room() -> None:
            await self._end(feed, push=True)

        room.viewer_sessions[f"relay-{worker}"] = closed_by_room
        self._sync(feed)
        logger.info("room %s: relaying to worker %d at %s:%d", room_id, worker, host, port)
        return {"relay": list(self.endpoint.address), "stage": self.describe(room.stage)}

    async def remove(self, room_id: str, worker: int) -> None:
        """The edge has no viewers of the room left."""
        feed = self._feeds.get((room_id, worker))
        if feed is not None:
            await self._end(feed, push=False)

    def set_viewers(
        self, room_id: str, worker: int, count: int, watchers: dict[str, str] | None = None
    ) -> None:
        """An edge's count of WHEP viewers of a room, and their names by watcher id."""
        room = self.rooms.rooms.get(room_id)
        if room is not None:
            room.audience.set_remote_watchers(str(worker), count, watchers or {})

    async def _end(self, feed: _Feed, *, push: bool) -> None:
        if self._feeds.get((feed.room.id, feed.worker)) is feed:
            del self._feeds[(feed.room.id, feed.worker)]
        self._stop(feed)
        feed.room.viewer_sessions.pop(f"relay-{feed.worker}", None)
        feed.room.audience.forget_worker(str(feed.worker))
        if push:
            with contextlib.suppress(RelayError):
                await _call(
                    self.peers,
                    feed.worker,
                    "POST",
                    f"/internal/rooms/{feed.room.id}/stage",
                    {"video": [], "audio": []},
                )
        self.rooms.discard_if_empty(feed.room)

    def _stop(self, feed: _Feed) -> None:
        feed.unlisten()
        feed.link.close()
        if feed.pushing is not None:
            feed.pushing.cancel()

    def _sync(self, feed: _Feed) -> None:
        """Forward exactly the stage's producers on the feed's link."""
        stage = feed.room.stage
        wanted = {id(p): p for p in stage.video + stage.audio}
        for key in list(feed.forwarded):
            if key not in wanted:
                feed.link.stop(feed.forwarded.pop(key))
        for key, producer in wanted.items():
            if key not in feed.forwarded:
                ssrc = self._ssrc(producer)
                feed.link.forward(producer, ssrc)
                feed.forwarded[key] = ssrc
        live = {
            id(p) for f in self._feeds.values() for p in f.room.stage.video + f.room.stage.audio
        }
        for key in [k for k in self._ssrcs if k not in live]:
            del self._ssrcs[key]

    def _stage_changed(self, feed: _Feed) -> None:
        self._sync(feed)
        feed.dirty = True
        if feed.pushing is None or feed.pushing.done():
            feed.pushing = asyncio.create_task(self._push(feed))

    async def _push(self, feed: _Feed) -> None:
        # One push at a time per edge, always the latest stage: pushes never arrive reordered.
        while feed.dirty:
            feed.dirty = False
            try:
                await _call(
                    self.peers,
                    feed.worker,
                    "POST",
                    f"/internal/rooms/{feed.room.id}/stage",
                    self.describe(feed.room.stage),
                )
            except RelayError as exc:
                logger.warning("room %s: %s", feed.room.id, exc)

    async def close(self) -> None:
        """Shutdown: stop every feed."""
        for feed in list(self._feeds.values()):
            self._stop(feed)
        self._feeds.clear()


# -- the edge side ---------------------------------------------------------------------------


@dataclass
class _EdgeRoom:
    room_id: str
    home: int
    stage: Stage
    relay: tuple[str, int] = ("127.0.0.1", 0)
    producers: dict[int, Producer] = field(default_factory=dict)
    "Edge producers by relay SSRC."
    viewers: int = 0
    watchers: dict[str, str] = field(default_factory=dict)
    "The counted WHEP sessions (not a participant's own page): names by watcher id."
    reporting: asyncio.Task[None] | None = None
    report_dirty: bool = False


class EdgeRooms:
    """Rooms of other workers, relayed here for this worker's WHEP viewers."""

    def __init__(self, worker: int, peers: Peers, endpoint: RelayEndpoint) -> None:
        self.worker = worker
        self.peers = peers
        self.endpoint = endpoint
        self._rooms: dict[str, _EdgeRoom] = {}
        self._joining: dict[str, asyncio.Future[_EdgeRoom]] = {}

    async def join(self, room_id: str, home: int) -> Stage:
        """The relayed stage of ``room_id`` (asking its home for a relay on first use)."""
        room = self._rooms.get(room_id)
        if room is not None and room.home == home:
            return room.stage
        pending = self._joining.get(room_id)
        if pending is not None:
            return (await asyncio.shield(pending)).stage
        future: asyncio.Future[_EdgeRoom] = asyncio.get_running_loop().create_future()
        self._joining[room_id] = future
        try:
            host, port = self.endpoint.address
            reply = await _call(
                self.peers,
                home,
                "POST",
                f"/internal/rooms/{room_id}/relays",
                {"worker": self.worker, "host": host, "port": port},
            )
            room = _EdgeRoom(room_id, home, Stage(room_id), (reply["relay"][0], reply["relay"][1]))
            self._rooms[room_id] = room
            self.apply(room_id, reply["stage"])
            future.set_result(room)
            return room.stage
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here; other waiters get it too
            raise
        finally:
            del self._joining[room_id]

    def viewer_added(self, room_id: str, watcher: tuple[str, str] | None) -> None:
        """A WHEP session of the room started here; ``watcher`` (id, name) when it is counted."""
        room = self._rooms.get(room_id)
        if room is not None:
            room.viewers += 1
            if watcher is not None:
                room.watchers[watcher[0]] = watcher[1]
            self._report(room)

    async def leave(self, room_id: str, watcher_id: str | None) -> None:
        """A WHEP session of the room ended here; the last one ends the relay."""
        room = self._rooms.get(room_id)
        if room is None:
            return
        room.viewers -= 1
        if watcher_id is not None:
            room.watchers.pop(watcher_id, None)
        if room.viewers > 0:
            self._report(room)
            return
        del self._rooms[room_id]
        self._close(room)
        with contextlib.suppress(RelayError):
            await _call(
                self.peers, room.home, "DELETE", f"/internal/rooms/{room_id}/relays/{self.worker}"
            )

    def apply(self, room_id: str, description: dict[str, Any]) -> None:
        """A STAGE from the home: open new streams, close gone ones, reorder the stage."""
        room = self._rooms.get(room_id)
        if room is None:
            return
        streams = {s["ssrc"]: s for s in description["video"] + description["audio"]}
        for ssrc in [s for s in room.producers if s not in streams]:
            self.endpoint.stop_receiving(room.relay, ssrc)
            room.producers.pop(ssrc).close()
        for ssrc, stream in streams.items():
            if ssrc not in room.producers:
                producer = Producer(
                    track_id=str(stream["track_id"]),
                    participant_id=str(stream["participant_id"]),
                    source=TrackSource(stream["source"]),
                    codec=codec_from_description(stream["codec"]),
                    send_keyframe_request=lambda: None,
                )
                self.endpoint.receive(room.relay, ssrc, producer)
                room.producers[ssrc] = producer
        room.stage.set(
            [room.producers[s["ssrc"]] for s in description["video"]],
            [room.producers[s["ssrc"]] for s in description["audio"]],
        )

    async def admit(self, home: int, room_id: str, token: str, address: str) -> Admission:
        """The home's verdict on a WHEP viewer's bearer credential (the home keeps the room's
        wrong-password counts, so guesses spread over workers count once)."""
        reply = await _call(
            self.peers,
            home,
            "POST",
            f"/internal/rooms/{room_id}/admit",
            {"token": token, "address": address},
        )
        return Admission.from_json(reply)

    def _report(self, room: _EdgeRoom) -> None:
        room.report_dirty = True
        if room.reporting is None or room.reporting.done():
            room.reporting = asyncio.create_task(self._send_count(room))

    async def _send_count(self, room: _EdgeRoom) -> None:
        while room.report_dirty:
            room.report_dirty = False
            try:
                await _call(
                    self.peers,
                    room.home,
                    "POST",
                    f"/internal/rooms/{room.room_id}/viewers",
                    {
                        "worker": self.worker,
                        "count": len(room.watchers),
                        "watchers": [{"id": i, "name": n} for i, n in room.watchers.items()],
                    },
                )
            except RelayError as exc:
                logger.warning("room %s: %s", room.room_id, exc)

    def _close(self, room: _EdgeRoom) -> None:
        if room.reporting is not None:
            room.reporting.cancel()
        room.stage.set([], [])
        for ssrc, producer in room.producers.items():
            self.endpoint.stop_receiving(room.relay, ssrc)
            producer.close()
        room.producers.clear()

    async def close(self) -> None:
        """Shutdown: stop receiving every room."""
        for room in list(self._rooms.values()):
            self._close(room)
        self._rooms.clear()


# -- internal routes -------------------------------------------------------------------------


def setup_internal_routes(
    app: web.Application,
    relaying: Callable[[], tuple[HomeRelays, EdgeRooms] | None],
    rooms: Rooms,
    store: RoomStore,
    signer: InviteSigner,
    throttle: LoginThrottle,
) -> None:
    """``/internal/...``: reachable only over the workers' Unix sockets (never proxied).

    ``relaying`` gives this worker's relays once they are started (None in a single process:
    the routes then answer 404).
    """

    def started() -> tuple[HomeRelays, EdgeRooms]:
        both = relaying()
        if both is None:
            raise web.HTTPNotFound(text="this server runs a single process")
        return both

    async def add_relay(request: web.Request) -> web.Response:
        home, _ = started()
        body = await request.json()
        try:
            reply = await home.add(
                request.match_info["room"],
                int(body["worker"]),
                str(body["host"]),
                int(body["port"]),
            )
        except UnknownRoom as exc:
            raise web.HTTPNotFound(text=exc.message) from None
        return web.json_response(reply)

    async def remove_relay(request: web.Request) -> web.Response:
        home, _ = started()
        await home.remove(request.match_info["room"], int(request.match_info["worker"]))
        return web.json_response({})

    async def viewers(request: web.Request) -> web.Response:
        home, _ = started()
        body = await request.json()
        watchers = {str(w["id"]): str(w["name"])[:64] for w in body.get("watchers", [])}
        home.set_viewers(
            request.match_info["room"], int(body["worker"]), int(body["count"]), watchers
        )
        return web.json_response({})

    async def admit_viewer(request: web.Request) -> web.Response:
        started()
        body = await request.json()
        record = await store.get(request.match_info["room"])
        if record is None:
            verdict = Admission(refused=Refused("unknown_room", "no such room"))
        else:
            verdict = await admit(
                rooms, signer, throttle, record, str(body["token"]), str(body["address"])
            )
        return web.json_response(verdict.to_json())

    async def room_exists(request: web.Request) -> web.Response:
        started()
        return web.json_response(
            {"exists": await store.get(request.match_info["room"]) is not None}
        )

    async def stage(request: web.Request) -> web.Response:
        _, edges = started()
        edges.apply(request.match_info["room"], await request.json())
        return web.json_response({})

    handlers: list[tuple[str, str, Callable[[web.Request], Awaitable[web.Response]]]] = [
        ("POST", "/internal/rooms/{room}/relays", add_relay),
        ("DELETE", "/internal/rooms/{room}/relays/{worker}", remove_relay),
        ("POST", "/internal/rooms/{room}/viewers", viewers),
        ("POST", "/internal/rooms/{room}/admit", admit_viewer),
        ("POST", "/internal/rooms/{room}/stage", stage),
        ("GET", ROOM_EXISTS_PATH, room_exists),
    ]
    for method, path, handler in handlers:
        app.router.add_route(method, path, handler)
