"""Which worker the front sends an HTTP request to: a pure function of method and path."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from mcu.contracts.cluster import INTERNAL_PREFIX, MAX_ROOM_ID_CHARS, session_worker

__all__ = ["Route", "RouteKind", "room_of_join", "room_of_request", "route"]


class RouteKind(enum.Enum):
    """How the front picks the worker for a request."""

    HOME = "home"
    "The room's home worker."
    NEW_VIEWER = "new_viewer"
    "The worker with the fewest viewers (a new WHEP session)."
    WORKER = "worker"
    "A worker named by the request itself (``Route.worker``)."
    NOT_FOUND = "not_found"
    "Answered 404 by the front: internal routes, sessions naming no worker."


@dataclass(frozen=True)
class Route:
    """Where one request goes."""

    kind: RouteKind
    "How the worker is chosen."
    room: str | None = None
    "The room of a ``HOME`` or ``NEW_VIEWER`` route."
    worker: int | None = None
    "The worker of a ``WORKER`` route."


_DEFAULT = Route(RouteKind.WORKER, worker=0)
_NOT_FOUND = Route(RouteKind.NOT_FOUND)


def _room(segment: str) -> str | None:
    # Longer ids get no home: worker 0 refuses them.
    return segment if 1 <= len(segment) <= MAX_ROOM_ID_CHARS else None


def route(method: str, path: str, workers: int) -> Route:
    """The route of ``method path`` (path percent-decoded, without the query string).

    ``/whip/{room}…``, ``/rooms/{room}/…`` and ``/api/rooms/{room}…`` go to the room's home;
    ``POST /whep/{room}`` to the least-loaded worker; ``DELETE``, ``PATCH`` and ``OPTIONS`` of
    ``/whep/{room}/{session}`` to the worker the session names
    (:func:`mcu.contracts.cluster.session_worker`); ``/internal/…`` nowhere;
    everything else to worker 0.
    """
    parts = path.split("/")[1:]
    if not parts:
        return _DEFAULT
    head = parts[0]
    if "/" + head == INTERNAL_PREFIX:
        return _NOT_FOUND
    if head == "whip" and len(parts) >= 2:
        room = _room(parts[1])
        return Route(RouteKind.HOME, room=room) if room else _DEFAULT
    if head == "rooms" and len(parts) >= 3:
        room = _room(parts[1])
        return Route(RouteKind.HOME, room=room) if room else _DEFAULT
    if head == "api" and len(parts) >= 3 and parts[1] == "rooms":
        room = _room(parts[2])
        return Route(RouteKind.HOME, room=room) if room else _DEFAULT
    if head == "whep":
        if len(parts) == 2 and method == "POST":
            room = _room(parts[1])
            return Route(RouteKind.NEW_VIEWER, room=room) if room else _DEFAULT
        if len(parts) == 3 and method in ("DELETE", "PATCH", "OPTIONS"):
            worker = session_worker(parts[2], workers)
            return _NOT_FOUND if worker is None else Route(RouteKind.WORKER, worker=worker)
    return _DEFAULT


def room_of_join(text: str) -> str | None:
    """The room a WebSocket's first frame joins, or None when it is no usable join."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # deep nesting exhausts the decoder's recursion
        return None
    if not isinstance(message, dict) or message.get("type") != "join":
        return None
    room = message.get("room")
    if not isinstance(room, str) or not 1 <= len(room) <= MAX_ROOM_ID_CHARS:
        return None
    try:
        room.encode()
    except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): no room's id, in no URL
        return None
    return room


def room_of_request(method: str, path: str) -> str | None:
    """The room whose home serves ``method path``: that of a ``HOME`` or ``NEW_VIEWER`` route,
    or of a WHEP session's ``DELETE`` or ``PATCH`` (``/whep/{room}/{session}``); None for the
    rest, which any node serves."""
    decision = route(method, path, 1)
    if decision.room is not None:
        return decision.room
    parts = path.split("/")[1:]
    if len(parts) == 3 and parts[0] == "whep" and method in ("DELETE", "PATCH"):
        return _room(parts[1])
    return None
