"""What the front and the workers agree on: room ids, routes, headers, session ids, messages.

With ``workers`` > 1 a front process routes client HTTP to N worker processes over Unix sockets
(:mod:`mcu.app.cluster`), and workers ask each other for relays and verdicts over ``/internal/...``
routes on the same sockets (:mod:`mcu.signaling.endpoints.relays`). Both sides import this module
and nothing else of each other, so a change to the contract is one change here:

- room ids: the front routes by them and every endpoint accepts no other;
- the headers the front adds to what it passes on, which a worker trusts;
- every internal route (templates for the router, functions building a room's path for a client);
- the WHIP/WHEP session id ``<worker>-<random>``: a worker mints it, the front routes its
  ``DELETE`` by the prefix.

It is the bottom layer: it imports nothing of ``mcu``.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import quote

__all__ = [
    "ADMIT_PATH",
    "FORWARDED_FOR_HEADER",
    "HOME_WORKER_HEADER",
    "INTERNAL_PREFIX",
    "JOIN_WITHIN_HEADER",
    "MAX_ROOM_ID_CHARS",
    "MAX_SOCKET_PATH_BYTES",
    "RELAYS_PATH",
    "RELAY_PATH",
    "ROOM_EXISTS_PATH",
    "ROOM_ID_PATTERN",
    "STAGE_PATH",
    "VIEWERS_PATH",
    "admit_path",
    "mint_session_id",
    "relay_path",
    "relays_path",
    "room_exists_path",
    "session_worker",
    "socket_dir",
    "stage_path",
    "viewers_path",
    "worker_socket",
]

# -- room ids --------------------------------------------------------------------------------

MAX_ROOM_ID_CHARS = 64
"""Longest room id: the admin API creates none longer, the front gives a longer one no home
(worker 0 refuses it), and the WebSocket join and join page refuse it."""

ROOM_ID_PATTERN = rf"^[A-Za-z0-9_-]{{1,{MAX_ROOM_ID_CHARS}}}$"
"""The ids the admin API creates rooms with: safe in a URL path segment and a file name as they
are. Other entry points only bound the length: an id outside the pattern names no room."""

# -- headers ---------------------------------------------------------------------------------

HOME_WORKER_HEADER = "X-Mcu-Home-Worker"
"Request header the front adds: the index of the worker that is home to the request's room."

JOIN_WITHIN_HEADER = "X-Mcu-Join-Within"
"""Request header the front adds to a WebSocket it passes on: seconds left (decimal) before the
socket must have joined a room; the front's deadline started when the client connected."""

FORWARDED_FOR_HEADER = "X-Forwarded-For"
"""Request header the front sets to the client's address. A worker trusts its last entry: only
the front and other workers reach a worker's socket."""

# -- sockets ---------------------------------------------------------------------------------

MAX_SOCKET_PATH_BYTES = 107
"Longest Unix socket path Linux accepts (``sun_path`` holds 108 bytes with the terminator)."


def socket_dir(data_dir: Path) -> Path:
    """Where the workers' sockets live (mode 0700: only this user reaches the workers)."""
    return data_dir / "run"


def worker_socket(data_dir: Path, index: int) -> Path:
    """The Unix socket worker ``index`` serves on."""
    return socket_dir(data_dir) / f"worker-{index}.sock"


# -- internal routes -------------------------------------------------------------------------
# Templates in aiohttp's router syntax; ``{room}`` is one percent-encoded path segment. The front
# never passes on a path under INTERNAL_PREFIX: only workers reach these routes.

INTERNAL_PREFIX = "/internal"
"Every route between processes starts with it; the front answers 404 to clients asking for one."

ROOM_EXISTS_PATH = INTERNAL_PREFIX + "/rooms/{room}"
"""``GET``, front → any worker: ``{"exists": bool}``. The front gives a room a home only once
it exists."""

RELAYS_PATH = ROOM_EXISTS_PATH + "/relays"
"``POST``, edge → home."

RELAY_PATH = RELAYS_PATH + "/{worker}"
"``DELETE``, edge → home, when the edge's last viewer of the room leaves."

VIEWERS_PATH = ROOM_EXISTS_PATH + "/viewers"
"``POST``, edge → home, as the edge's viewers change."

ADMIT_PATH = ROOM_EXISTS_PATH + "/admit"
"``POST``, edge → home: a WHEP viewer's credential."

STAGE_PATH = ROOM_EXISTS_PATH + "/stage"
"``POST``, home → edge, on every change of the stage."


def _room(room: str) -> str:
    return quote(room, safe="")


def room_exists_path(room: str) -> str:
    """The :data:`ROOM_EXISTS_PATH` of ``room``."""
    return ROOM_EXISTS_PATH.format(room=_room(room))


def relays_path(room: str) -> str:
    """The :data:`RELAYS_PATH` of ``room``."""
    return RELAYS_PATH.format(room=_room(room))


def relay_path(room: str, worker: int) -> str:
    """The :data:`RELAY_PATH` of ``room``'s relay to edge ``worker``."""
    return RELAY_PATH.format(room=_room(room), worker=worker)


def viewers_path(room: str) -> str:
    """The :data:`VIEWERS_PATH` of ``room``."""
    return VIEWERS_PATH.format(room=_room(room))


def admit_path(room: str) -> str:
    """The :data:`ADMIT_PATH` of ``room``."""
    return ADMIT_PATH.format(room=_room(room))


def stage_path(room: str) -> str:
    """The :data:`STAGE_PATH` of ``room``."""
    return STAGE_PATH.format(room=_room(room))


# -- WHIP/WHEP session ids -------------------------------------------------------------------

_SESSION_RANDOM_BYTES = 12
"Randomness of a session id (96 bits): together with the bearer token it ends the session."
_MAX_WORKER_DIGITS = 3
"A prefix longer than this names no worker (there are at most 64); parsing stops early."


def mint_session_id(worker: int) -> str:
    """A new WHIP/WHEP session id of ``worker``: ``<worker>-<random>``, the random part
    URL-safe base64. The front routes the session's ``DELETE`` by the prefix."""
    if not 0 <= worker < 10**_MAX_WORKER_DIGITS:
        raise ValueError(f"no session id for worker {worker}")
    return f"{worker}-{secrets.token_urlsafe(_SESSION_RANDOM_BYTES)}"


def session_worker(session: str, workers: int) -> int | None:
    """The worker a session id names, if it is well-formed and below ``workers``."""
    prefix, dash, rest = session.partition("-")
    # isdigit() alone also takes superscripts and other scripts' digits, which int() refuses.
    if not dash or not rest or not (prefix.isascii() and prefix.isdigit()):
        return None
    if len(prefix) > _MAX_WORKER_DIGITS:
        return None
    index = int(prefix)
    return index if index < workers else None
