"""The ``/internal/...`` routes of a worker: what other workers and nodes ask of it.

A worker serves them over its node's Unix sockets only; another node's call reaches them through
this node's front, which verified its credential and names the caller
(:mod:`mcu.signaling.endpoints.nodecalls`), and what a body says about its sender must match
that node. The routes and bodies are
:mod:`mcu.contracts.cluster`'s; every body is validated on receipt (400 naming the problem). The
relays they start and stop are :mod:`mcu.signaling.endpoints.relays`'.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from mcu.contracts.cluster import (
    ADMIT_PATH,
    RELAY_PATH,
    RELAYS_PATH,
    ROOM_EXISTS_PATH,
    STAGE_PATH,
    VIEWERS_PATH,
    AdmitRequest,
    Done,
    RelayRequest,
    RoomExistsReply,
    StageDescription,
    ViewersReport,
)
from mcu.infra.httpapi import describe_validation_error
from mcu.signaling.endpoints.nodecalls import caller_node
from mcu.signaling.endpoints.relays import (
    EdgeRooms,
    HomeRelays,
    RelayError,
    RelayRefused,
    admit_reply,
)
from mcu.signaling.rooms.admission import Bearer, Entry, Refused
from mcu.signaling.rooms.entrance import Entrance
from mcu.signaling.rooms.errors import UnknownRoom
from mcu.signaling.rooms.records import RoomRecords

__all__ = ["setup_internal_routes"]

_M = TypeVar("_M", bound=BaseModel)


async def _read(request: web.Request, model: type[_M]) -> _M:
    """The request's body as ``model``; 400 naming the first problem when it is not one."""
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as exc:
        problem = describe_validation_error(exc)
        raise web.HTTPBadRequest(text=f"malformed {model.__name__}: {problem}") from None


def _reply(message: BaseModel) -> web.Response:
    return web.json_response(text=message.model_dump_json())


def _sender(request: web.Request, claimed: str | None) -> str | None:
    """The edge's node a body names, checked against the node that signed the call: another
    node may speak only for itself (403), and over the node's own sockets it is trusted."""
    signed = caller_node(request)
    if signed is None:
        return claimed
    if claimed != signed:
        raise web.HTTPForbidden(text="the request names another node than the one that signed it")
    return signed


def setup_internal_routes(
    app: web.Application,
    relaying: Callable[[], tuple[HomeRelays, EdgeRooms] | None],
    store: RoomRecords,
    entrance: Entrance,
) -> None:
    """``/internal/...``: reachable only over the workers' Unix sockets.

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
        body = await _read(request, RelayRequest)
        node = _sender(request, body.node)
        try:
            reply = await home.add(
                request.match_info["room"],
                body.worker,
                body.host,
                body.port,
                node=node,
                nonce=body.nonce,
                home_node=body.home_node,
            )
        except UnknownRoom as exc:
            raise web.HTTPNotFound(text=exc.message) from None
        except RelayError as exc:  # this node's entry could not get the stage from the home
            raise web.HTTPServiceUnavailable(text=str(exc)) from None
        except RelayRefused as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        except ValueError as exc:  # not a numeric IPv4 address
            raise web.HTTPBadRequest(text=f"malformed RelayRequest: {exc}") from None
        return _reply(reply)

    async def remove_relay(request: web.Request) -> web.Response:
        home, _ = started()
        worker = request.match_info["worker"]
        if not (worker.isascii() and worker.isdigit()):
            raise web.HTTPBadRequest(text=f"no worker {worker!r}")
        await home.remove(request.match_info["room"], int(worker), caller_node(request))
        return _reply(Done())

    async def viewers(request: web.Request) -> web.Response:
        home, _ = started()
        body = await _read(request, ViewersReport)
        watchers = {w.id: w.name for w in body.watchers}
        node = _sender(request, body.node)
        home.set_viewers(request.match_info["room"], body.worker, body.count, watchers, node)
        return _reply(Done())

    async def admit_viewer(request: web.Request) -> web.Response:
        started()
        body = await _read(request, AdmitRequest)
        try:
            admitted = await entrance.admit(
                Entry.WATCH, request.match_info["room"], Bearer(body.token), body.address
            )
        except Refused as exc:
            return _reply(admit_reply(exc))
        return _reply(admit_reply(admitted))

    async def room_exists(request: web.Request) -> web.Response:
        started()
        exists = await store.get(request.match_info["room"]) is not None
        return _reply(RoomExistsReply(exists=exists))

    async def stage(request: web.Request) -> web.Response:
        _, edges = started()
        description = await _read(request, StageDescription)
        edges.apply(request.match_info["room"], description, caller_node(request))
        return _reply(Done())

    handlers: list[tuple[str, str, Callable[[web.Request], Awaitable[web.Response]]]] = [
        ("POST", RELAYS_PATH, add_relay),
        ("DELETE", RELAY_PATH, remove_relay),
        ("POST", VIEWERS_PATH, viewers),
        ("POST", ADMIT_PATH, admit_viewer),
        ("POST", STAGE_PATH, stage),
        ("GET", ROOM_EXISTS_PATH, room_exists),
    ]
    for method, path, handler in handlers:
        app.router.add_route(method, path, handler)
