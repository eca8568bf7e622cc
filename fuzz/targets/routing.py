"""The front process's routing (``mcu.app.cluster.routing``): request paths and WebSocket join
frames.

The front routes every request by its percent-decoded path, and every WebSocket by the room of its
first frame, before any worker validates anything. Properties: a route names a room of 1 to 64
characters or a worker that exists; a joined room can be put in the URL of the front's
existence probe (``room_exists_path``), as :meth:`~mcu.app.cluster.front.Front.home_of` does.
"""

from __future__ import annotations

from mcu.app.cluster.routing import RouteKind, room_of_join, route
from mcu.contracts.cluster import MAX_ROOM_ID_CHARS, room_exists_path

from ..harness import Crash, Input, text

_METHODS = ("GET", "POST", "DELETE", "PATCH", "OPTIONS", "PUT", "HEAD")


def front_routing(data: bytes) -> None:
    """A path (with a method and a worker count) or a first WebSocket frame."""
    source = Input(data)
    method = _METHODS[source.byte() % len(_METHODS)]
    workers = 1 + source.byte() % 8
    frame = source.flag()
    body = text(source.rest())
    if frame:
        room = room_of_join(body)
        if room is None:
            return
        if not 1 <= len(room) <= MAX_ROOM_ID_CHARS:
            raise Crash(f"a join routed by a room of {len(room)} characters")
        room_exists_path(room)
        return
    chosen = route(method, "/" + body, workers)
    if chosen.kind in (RouteKind.HOME, RouteKind.NEW_VIEWER):
        if chosen.room is None or not 1 <= len(chosen.room) <= MAX_ROOM_ID_CHARS:
            raise Crash(f"{method} /{body!r} routed to room {chosen.room!r}")
    elif chosen.kind is RouteKind.WORKER and not (
        chosen.worker is not None and 0 <= chosen.worker < workers
    ):
        raise Crash(f"{method} /{body!r} routed to worker {chosen.worker} of {workers}")
