"""WHIP ingest (RFC 9725) and WHEP playback over plain HTTP.

``POST /whip/{room}`` publishes a lecture from a broadcasting tool (OBS, GStreamer) with the room
password or a publishing invite; ``POST /whep/{room}`` plays a room's stage (its lecturers' and
speakers' audio and video, content first) with a viewer credential. Both answer the offer in one
round trip (no trickle ICE: the answer carries every candidate) and return a ``Location`` whose
``DELETE`` ends the session. The 201 also carries the ICE servers the client may use, one
``Link: <url>; rel="ice-server"`` header per URL (RFC 9725 section 4.6), TURN ones with a
credential made for this session alone.

A meeting is private: it is watched over WHEP only with a viewer invite (or a participant's own
session token), never with the room password, and its participants see the name of everyone
watching (``?name=``, or :data:`DEFAULT_VIEWER_NAME`). A lecture's audience is only counted.

With several workers a WHEP viewer may land on a worker that is not the room's home: the stage
then comes over the relay (:mod:`mcu.signaling.endpoints.relays`) and only the counts go back home.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from aiortc import sdp as aiortc_sdp
from prometheus_client import Counter, Gauge

from mcu.contracts.cluster import HOME_NODE_HEADER, HOME_WORKER_HEADER, mint_session_id
from mcu.infra import metrics
from mcu.infra.auditlog import Detail
from mcu.infra.httpapi import ApiError, error_response, read_body, store_unavailable_response
from mcu.infra.socketlimits import address_key
from mcu.media import TrackSource
from mcu.sfu.peer import (
    MAX_PUBLISH_SECTIONS,
    IceServerConfig,
    NegotiationError,
    check_section_count,
    close_quietly,
)
from mcu.sfu.relay import RelayEndpoint
from mcu.sfu.stage import Stage
from mcu.sfu.turn import ClientIceServers
from mcu.sfu.viewer import MAX_VIEWER_SECTIONS, ViewerConnection
from mcu.signaling.endpoints.relaycalls import NodeLinks, Peers, RelayError
from mcu.signaling.endpoints.relays import EDGE_CHECK_S, EdgeRooms, HomeRelays
from mcu.signaling.endpoints.ws import SignalingServices
from mcu.signaling.rooms.admission import Bearer, Entry, Refused
from mcu.signaling.rooms.e2ee import PlaintextFeature, refusal
from mcu.signaling.rooms.errors import RoomError
from mcu.signaling.rooms.participant import Participant
from mcu.signaling.rooms.records import RoomRecords
from mcu.signaling.rooms.session import Room
from mcu.signaling.rooms.store import RoomRecord, StoreUnavailable

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

MAX_SDP_BYTES = 64 * 1024
"Largest offer accepted (a browser's offer is ~6 kB; OBS's ~3 kB)."
DEFAULT_PUBLISHER_NAME = "Lecturer"
DEFAULT_VIEWER_NAME = "WHEP viewer"
"How a meeting's participants see a WHEP player that gave no ``?name=``."

WHEP_SESSIONS = Gauge("mcu_whep_sessions", "WHEP playback sessions on this worker.")
WHEP_REFUSED = Counter(
    "mcu_whep_refused_busy_total", "WHEP sessions refused because the worker was saturated."
)
WHEP_REFUSED_ADDRESS = Counter(
    "mcu_whep_refused_address_total",
    "WHEP sessions refused because the client address held max_whep_per_address already.",
)
BUSY_RETRY_SECONDS = 5
"Retry-After of a 503 for a saturated worker."

_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Location, Link",
}


@dataclass
class _Session:
    room_id: str
    close: Callable[[], Awaitable[None]]
    credential: bytes
    "SHA-256 of the bearer token that created the session: DELETE must bear it too."
    viewer: ViewerConnection | None = None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass
class Broadcasting:
    """WHIP and WHEP sessions of this worker, and its place among the workers."""

    signaling: SignalingServices
    ice_servers: list[IceServerConfig]
    worker: int = 0
    "This worker's index (0 when the server is one process)."
    relays: HomeRelays | None = None
    "Feeds this worker's rooms to other workers (None when the server is one process)."
    edges: EdgeRooms | None = None
    "Rooms of other workers relayed here for this worker's viewers."
    sessions: dict[str, _Session] = field(default_factory=dict)
    busy: Callable[[], bool] = lambda: False
    "Whether this worker is saturated: new WHEP viewers are then refused with 503."
    max_per_address: int = 100
    "WHEP sessions one client address (an IPv6 /64) may hold here at once."
    per_address: dict[str, int] = field(default_factory=dict)
    "WHEP sessions held now, by address key."
    client_ice: ClientIceServers = field(default_factory=ClientIceServers)
    "The ICE servers each session is handed in ``Link`` headers (TURN: its own credential)."
    public_url: str = ""
    """This node's advertise URL in a cluster: WHEP sessions' ``Location`` is absolute on it,
    so a viewer redirected here (307) ends its session here ("": relative)."""
    _endpoint: RelayEndpoint | None = None
    _watch: asyncio.Future[Any] | None = None

    def new_session_id(self) -> str:
        """A new session id naming this worker: the front routes its ``DELETE`` by it."""
        return mint_session_id(self.worker)

    @property
    def viewers(self) -> int:
        """WHEP sessions on this worker (``/healthz``; the front balances viewers by it)."""
        return sum(1 for s in self.sessions.values() if s.room_id.startswith("whep:"))

    def relaying(self) -> tuple[HomeRelays, EdgeRooms] | None:
        """This worker's relays, once started (never in a single process)."""
        if self.relays is None or self.edges is None:
            return None
        return self.relays, self.edges

    async def start_relaying(
        self, worker: int, peers: Peers, store: RoomRecords, cluster: NodeLinks | None = None
    ) -> None:
        """Become worker ``worker`` among others: open the relay socket, serve and use relays
        (``cluster``: this node's way to the others, in a cluster)."""
        endpoint = await RelayEndpoint.open("127.0.0.1" if cluster is None else cluster.host)
        self.worker, self._endpoint, rooms = worker, endpoint, self.signaling.rooms
        keying, nodes = (cluster.keying, cluster.nodes) if cluster else (None, None)
        node = cluster.node if cluster else None
        self.relays = HomeRelays(worker, peers, endpoint, rooms, store, keying=keying, nodes=nodes)
        tree = cluster.tree if cluster else None
        self.edges = self.relays.edges = EdgeRooms(
            worker, peers, endpoint, node=node, keying=keying, nodes=nodes, tree=tree
        )
        if cluster is not None:  # a node up or down a relay may die without a goodbye
            watches = (
                self.relays.watch_edges(EDGE_CHECK_S),
                self.edges.watch_upstreams(EDGE_CHECK_S),
            )
            self._watch = asyncio.gather(*watches)
        logger.info("worker %d relays on %s:%d", worker, *endpoint.address)

    async def stop_relaying(self) -> None:
        """Cleanup: stop relays and close the relay socket."""
        if self._watch is not None:
            self._watch.cancel()
        if self.relays is not None:
            await self.relays.close()
        if self.edges is not None:
            await self.edges.close()
        if self._endpoint is not None:
            self._endpoint.close()
            self._endpoint = None

    def viewer_connections(self) -> list[ViewerConnection]:
        """Live WHEP connections (their consumers count in the forwarding metrics)."""
        return [s.viewer for s in self.sessions.values() if s.viewer is not None]

    async def close_all(self) -> None:
        """Shutdown: end every session."""
        for session in list(self.sessions.values()):
            with contextlib.suppress(Exception):
                await session.close()
        self.sessions.clear()


BROADCASTING = web.AppKey("broadcasting", Broadcasting)


# -- helpers ---------------------------------------------------------------------------------


def _bearer(request: web.Request) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    token = credentials.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "unauthorized",
            "send Authorization: Bearer <room password or token>",
            {"WWW-Authenticate": 'Bearer realm="mcu"'},
        )
    return token


async def _read_offer(request: web.Request, max_sections: int) -> str:
    """The offer, refused before anything else looks at it when it is not SDP text or has more
    than ``max_sections`` media sections (each would cost a transceiver)."""
    if request.content_type != "application/sdp":
        raise ApiError(415, "unsupported_media_type", "the offer must be application/sdp")
    return decode_offer(await read_body(request, MAX_SDP_BYTES), max_sections)


def decode_offer(body: bytes, max_sections: int = MAX_PUBLISH_SECTIONS) -> str:
    """A WHIP/WHEP request body as SDP text; ApiError 400 if it is not UTF-8 or has more than
    ``max_sections`` media sections."""
    try:
        offer = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_sdp", "the offer is not UTF-8 text") from None
    try:
        check_section_count(offer, max_sections)
    except NegotiationError as exc:
        raise ApiError(400, "bad_sdp", str(exc)) from None
    return offer


def _refusal(exc: Refused) -> ApiError:
    """The HTTP error for an admission refusal."""
    if exc.code == "rate_limited":
        retry = str(int(exc.retry_after or 0) + 1)
        return ApiError(429, "rate_limited", exc.message, {"Retry-After": retry})
    if exc.code == "unknown_room":
        return ApiError(404, "unknown_room", exc.message)
    if exc.code in (
        "viewer_invite_required",
        "room_not_open",
        "room_full",
        "wrong_room",
        "role_not_allowed",
    ):
        return ApiError(403, exc.code, exc.message)
    if exc.code == "bad_token":  # the platform's token: its code, and the reason
        return ApiError(401, exc.code, exc.message, {"WWW-Authenticate": 'Bearer realm="mcu"'})
    # wrong_password, bad_invite, not_a_publisher: the message says what would admit.
    return _unauthorised(exc.message)


def _unauthorised(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": 'Bearer realm="mcu"'})


def _record(
    hub: Broadcasting, action: str, actor: str, room_id: str, address: str, **details: Detail
) -> None:
    """Record a WHIP or WHEP session's start or end on the audit trail."""
    audit = hub.signaling.audit
    if audit is not None:
        audit.record(action, actor=actor, room=room_id, address=address, details=details)


def _require_key(request: web.Request, record: RoomRecord, feature: PlaintextFeature) -> None:
    """Refuse (403 ``e2ee_room``) a client of an end-to-end encrypted room that does not say,
    with ``?e2ee=1``, that it encrypts or decrypts frames with the room key. The server cannot
    check the claim (it never has the key); the refusal is for the ordinary WHIP/WHEP tools,
    which would otherwise send plaintext or play nothing, silently."""
    if record.e2ee and request.query.get("e2ee") != "1":
        refused = refusal(feature)
        raise ApiError(403, refused.code, refused.message)


def _display_name(request: web.Request, default: str) -> str:
    return request.query.get("name", default).strip()[:64] or default


def _sources(offer_sdp: str) -> dict[str, TrackSource]:
    """First audio section: microphone; first video: camera; second video: content."""
    try:
        description = aiortc_sdp.SessionDescription.parse(offer_sdp)
    except Exception as exc:
        raise ApiError(400, "bad_sdp", f"malformed SDP: {exc}") from None
    sources: dict[str, TrackSource] = {}
    videos = 0
    audio = False
    for media in description.media:
        mid = media.rtp.muxId
        if not mid or media.direction in ("recvonly", "inactive"):
            continue
        if media.kind == "audio" and not audio:
            sources[mid], audio = TrackSource.MICROPHONE, True
        elif media.kind == "video" and videos < 2:
            sources[mid] = TrackSource.CAMERA if videos == 0 else TrackSource.CONTENT
            videos += 1
    if not sources:
        raise ApiError(400, "bad_sdp", "the offer sends no audio or video section with a mid")
    return sources


def _quoted(value: str) -> str:
    """An RFC 8288 quoted string (RFC 9110 section 5.6.4)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ice_server_links(servers: list[IceServerConfig]) -> list[str]:
    """One ``Link`` header value per ICE server URL, as RFC 9725 section 4.6 writes them."""
    links = []
    for server in servers:
        params = '; rel="ice-server"'
        if server.username is not None and server.credential is not None:
            params += (
                f"; username={_quoted(server.username)}"
                f"; credential={_quoted(server.credential)}"
                '; credential-type="password"'
            )
        links += [f"<{url}>{params}" for url in server.urls]
    return links


def _created(answer: str, location: str, ice_servers: list[IceServerConfig]) -> web.Response:
    response = web.Response(
        status=201,
        body=answer.encode("utf-8"),
        content_type="application/sdp",
        headers={"Location": location} | _CORS,
    )
    for link in ice_server_links(ice_servers):
        response.headers.add("Link", link)
    return response


# -- WHIP ------------------------------------------------------------------------------------


async def whip_post(request: web.Request) -> web.Response:
    """``POST /whip/{room}``: publish to a room from a broadcasting tool."""
    hub = request.app[BROADCASTING]
    services = hub.signaling
    room_id = request.match_info["room"]
    offer = await _read_offer(request, MAX_PUBLISH_SECTIONS)
    token = _bearer(request)
    address = request.remote or "unknown"
    name = _display_name(request, DEFAULT_PUBLISHER_NAME)
    try:
        admitted = await services.entrance.admit(
            Entry.PUBLISH, room_id, Bearer(token), address, name
        )
    except Refused as exc:
        raise _refusal(exc) from None
    record, role = admitted.record, admitted.role
    _require_key(request, record, "whip")
    name = admitted.name or name
    sources = _sources(offer)
    room = services.rooms.get_or_create(record.id, record.title, record.kind, record.e2ee)
    participant = await room.add(name, role, _nobody_listens, subscribe=False)
    try:
        answer, _ = await room.publish(participant, offer, sources)
    except RoomError as exc:
        await _drop_participant(hub, room, participant)
        raise ApiError(400, exc.code, exc.message) from None
    except Exception:
        await _drop_participant(hub, room, participant)
        raise
    session_id = hub.new_session_id()

    seat = {"participant": participant.id, "role": role, "via": "whip"}

    async def close() -> None:
        hub.sessions.pop(session_id, None)
        participant.on_removed = None
        await _drop_participant(hub, room, participant)
        _record(hub, "room.left", name, room.id, address, reason="left", **seat)

    def removed_by_room() -> None:  # connection failed, chair removed them, room ended
        hub.sessions.pop(session_id, None)
        _record(hub, "room.left", name, room.id, address, reason="removed", **seat)

    participant.on_removed = removed_by_room
    hub.sessions[session_id] = _Session(f"whip:{room.id}", close, _digest(token))
    _record(hub, "room.joined", name, room.id, address, **seat)
    logger.info("room %s: WHIP publisher %s as %s", room.id, participant.id, role)
    ice = hub.client_ice.issue(participant.id, time.time())
    return _created(answer, f"/whip/{room.id}/{session_id}", ice)


async def _nobody_listens(message: dict[str, Any]) -> None:
    """A WHIP publisher has no signalling channel: room events are not for it."""


async def _drop_participant(hub: Broadcasting, room: Room, participant: Participant) -> None:
    await room.remove(participant, "left")
    hub.signaling.rooms.discard_if_empty(room)


# -- WHEP ------------------------------------------------------------------------------------


async def whep_post(request: web.Request) -> web.Response:
    """``POST /whep/{room}``: play a room's stage."""
    hub = request.app[BROADCASTING]
    services = hub.signaling
    room_id = request.match_info["room"]
    offer = await _read_offer(request, MAX_VIEWER_SECTIONS)
    token = _bearer(request)
    home, home_node = _home_worker(request, hub)
    address = request.remote or "unknown"
    credential = Bearer(token)
    entrance = services.entrance
    name = _display_name(request, DEFAULT_VIEWER_NAME)
    try:
        # Credentials are judged where the room lives, so its wrong-password counts are one.
        if home == hub.worker and home_node is None:
            admitted = await entrance.admit(Entry.WATCH, room_id, credential, address, name)
        else:
            assert hub.edges is not None
            record = await entrance.room(Entry.WATCH, room_id, credential, address)
            admitted = await _relayed(hub.edges.admit(home, record, token, address, home_node))
    except Refused as exc:
        raise _refusal(exc) from None
    record = admitted.record
    _require_key(request, record, "whep")
    # A live participant's session token (the viewer page) is already counted (and, in a
    # meeting, named) as the participant it belongs to.
    watcher = None if admitted.own_session else (f"w{secrets.token_hex(4)}", admitted.name or name)
    if hub.busy():
        # The viewers already here would all lose packets with one more; the player asks again
        # (and the front may pick a less loaded worker).
        WHEP_REFUSED.inc()
        raise ApiError(
            503,
            "busy",
            "this server is at capacity; try again shortly",
            {"Retry-After": str(BUSY_RETRY_SECONDS)},
        )

    held = address_key(address)
    if hub.per_address.get(held, 0) >= hub.max_per_address:
        WHEP_REFUSED_ADDRESS.inc()
        raise ApiError(
            429,
            "too_many_sessions",
            f"this address holds {hub.max_per_address} WHEP sessions, the most allowed; "
            "end one first",
            {"Retry-After": str(BUSY_RETRY_SECONDS)},
        )
    hub.per_address[held] = hub.per_address.get(held, 0) + 1

    session_id = hub.new_session_id()
    room: Room | None = None
    if home == hub.worker and home_node is None:
        room = services.rooms.get_or_create(record.id, record.title, record.kind, record.e2ee)
        stage: Stage = room.stage
    else:
        assert hub.edges is not None
        try:
            stage = await _relayed(hub.edges.stage_of(record.id, home, home_node))
        except BaseException:
            _release_address(hub, held)
            raise
    viewer = ViewerConnection(hub.ice_servers, stage, _count_consumers)
    closing: list[asyncio.Task[None]] = []
    seat: dict[str, Detail] = {
        "participant": watcher[0] if watcher is not None else "(their own page)",
        "role": admitted.role,
        "via": "whep",
    }
    answered: list[bool] = []  # the viewer joined once the answer went out

    async def close() -> None:
        if hub.sessions.pop(session_id, None) is None:
            return
        if answered:
            _record(hub, "room.left", name, record.id, address, reason="left", **seat)
        _release_address(hub, held)
        await close_quietly(viewer)
        if room is not None:
            room.viewer_sessions.pop(session_id, None)
            if watcher is not None:
                room.audience.remove_watcher(watcher[0])
            services.rooms.discard_if_empty(room)
        elif hub.edges is not None:
            await hub.edges.leave(record.id, watcher[0] if watcher is not None else None)
        WHEP_SESSIONS.dec()

    hub.sessions[session_id] = _Session(f"whep:{record.id}", close, _digest(token), viewer)
    WHEP_SESSIONS.inc()
    if room is not None:
        room.viewer_sessions[session_id] = close
        if watcher is not None:
            room.audience.add_watcher(*watcher)
    elif hub.edges is not None:
        hub.edges.viewer_added(record.id, watcher)
    try:
        answer = await viewer.answer(offer)
    except NegotiationError as exc:
        await close()
        raise ApiError(400, "bad_sdp", str(exc)) from None
    except Exception:
        await close()
        raise
    viewer.on_closed = lambda: closing.append(asyncio.ensure_future(close()))
    answered.append(True)
    _record(hub, "room.joined", name, record.id, address, **seat)
    # Ids only (names are personal data), and never the session id: with the token, it ends
    # the session.
    logger.info(
        "room %s: WHEP viewer %s on worker %d",
        record.id,
        watcher[0] if watcher is not None else "(a participant's page)",
        hub.worker,
    )
    # The relay's log names the watcher (or a fresh label), never the session id.
    label = watcher[0] if watcher is not None else f"w{secrets.token_hex(4)}"
    ice = hub.client_ice.issue(label, time.time())
    return _created(answer, f"{hub.public_url}/whep/{record.id}/{session_id}", ice)


async def _relayed(call: Awaitable[_T]) -> _T:
    try:
        return await call
    except RelayError as exc:
        logger.warning("WHEP: %s", exc)
        raise ApiError(503, "worker_unavailable", "the room's worker did not answer") from None


def _home_worker(request: web.Request, hub: Broadcasting) -> tuple[int, str | None]:
    """The room's home worker (this node's entry for it, when the front names its home node)
    and its home node when that is another one."""
    node = request.headers.get(HOME_NODE_HEADER) if hub.edges is not None else None
    header = request.headers.get(HOME_WORKER_HEADER)
    if header is None or hub.edges is None:
        return hub.worker, node
    try:
        return int(header), node
    except ValueError:
        raise ApiError(400, "bad_request", f"{HOME_WORKER_HEADER} must be a worker index") from None


def _release_address(hub: Broadcasting, held: str) -> None:
    left = hub.per_address.pop(held, 1) - 1
    if left > 0:
        hub.per_address[held] = left


def _count_consumers(delta: int) -> None:
    metrics.CONSUMERS.inc(delta)


# -- both ------------------------------------------------------------------------------------


async def session_delete(request: web.Request) -> web.Response:
    """``DELETE /whip/{room}/{session}`` or ``/whep/...``: end the session."""
    hub = request.app[BROADCASTING]
    session = hub.sessions.get(request.match_info["session"])
    kind = request.path.split("/", 2)[1]
    if session is None or session.room_id != f"{kind}:{request.match_info['room']}":
        raise ApiError(404, "unknown_session", "no such session (it may have ended)")
    # The session URL alone is not enough: it may have been seen in a proxy's log.
    if not hmac.compare_digest(_digest(_bearer(request)), session.credential):
        raise _unauthorised("the bearer token the session was created with")
    await session.close()
    return web.Response(status=200)


async def session_patch(request: web.Request) -> web.Response:
    """``PATCH``: trickle ICE and ICE restarts are not supported (the answer is complete)."""
    raise ApiError(405, "method_not_allowed", "trickle ICE is not supported; send full offers")


async def preflight(request: web.Request) -> web.Response:
    """CORS preflight for browser WHIP/WHEP clients on other origins."""
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": "POST, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": "86400",
        },
    )


def setup_broadcasting(app: web.Application, hub: Broadcasting) -> None:
    """Mount WHIP and WHEP: JSON errors and CORS headers on every reply."""
    app[BROADCASTING] = hub
    for kind, post in (("whip", whip_post), ("whep", whep_post)):
        app.router.add_post(f"/{kind}/{{room}}", _handled(post))
        app.router.add_options(f"/{kind}/{{room}}", _handled(preflight))
        app.router.add_delete(f"/{kind}/{{room}}/{{session}}", _handled(session_delete))
        app.router.add_patch(f"/{kind}/{{room}}/{{session}}", _handled(session_patch))
        app.router.add_options(f"/{kind}/{{room}}/{{session}}", _handled(preflight))


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _handled(handler: _Handler) -> _Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except ApiError as exc:
            response = error_response(exc.status, exc.error, exc.message, exc.headers)
        except StoreUnavailable as exc:  # a cluster's Redis failing over: the tool retries
            logger.warning("%s %s: %s", request.method, request.path, exc)
            response = store_unavailable_response()
        response.headers.update(_CORS)
        return response

    wrapped.__doc__ = handler.__doc__
    return wrapped
