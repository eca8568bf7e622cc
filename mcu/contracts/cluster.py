"""What the front and the workers agree on: room ids, routes, headers, session ids, messages.

With ``workers`` > 1 a front process routes client HTTP to N worker processes over Unix sockets
(:mod:`mcu.app.cluster`), and workers ask each other for relays and verdicts over ``/internal/...``
routes on the same sockets (:mod:`mcu.signaling.endpoints.relays`). Both sides import this module
and nothing else of each other, so a change to the contract is one change here:

- room ids: the front routes by them and every endpoint accepts no other;
- the headers the front adds to what it passes on, which a worker trusts;
- every internal route (templates for the router, functions building a room's path for a client);
- the WHIP/WHEP session id ``<worker>-<random>``: a worker mints it, the front routes its
  ``DELETE`` by the prefix;
- every internal request and reply body as a typed model, validated on receipt so a malformed one
  is refused (400, or no admission) rather than read half-way.

It is the bottom layer: it imports nothing of ``mcu`` but :mod:`mcu.contracts.nodes` (a node's
id).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Final, Literal
from urllib.parse import quote

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
)

from mcu.contracts.nodes import NODE_ID_PATTERN

__all__ = [
    "ADMIT_PATH",
    "CALLER_NODE_HEADER",
    "FORWARDED_FOR_HEADER",
    "HOME_NODE_HEADER",
    "HOME_WORKER_HEADER",
    "INTERNAL_PREFIX",
    "JOIN_WITHIN_HEADER",
    "MAX_ROOM_ID_CHARS",
    "MAX_SOCKET_PATH_BYTES",
    "MAX_WATCHER_NAME_CHARS",
    "NODE_CREDENTIAL_HEADER",
    "RELAYS_PATH",
    "RELAY_PATH",
    "ROOM_CHANGES_CHANNEL",
    "ROOM_EXISTS_PATH",
    "ROOM_HOME_WORKER",
    "ROOM_ID_PATTERN",
    "STAGE_PATH",
    "VIEWERS_PATH",
    "WORKER_HEADER",
    "AdmitReply",
    "AdmitRequest",
    "CodecDescription",
    "Done",
    "Refusal",
    "RelayReply",
    "RelayRequest",
    "Role",
    "RoomChange",
    "RoomExistsReply",
    "Source",
    "StageDescription",
    "StreamDescription",
    "ViewersReport",
    "Watcher",
    "admit_path",
    "internal_room",
    "internal_worker",
    "is_internal",
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

HOME_NODE_HEADER = "X-Mcu-Home-Node"
"""Request header the front adds to a new WHEP viewer it serves on this node although another
node is the room's home (the cascade): that node's id. The worker then takes the stage from the
room's home worker there as an edge, and asks it to admit the viewer."""

JOIN_WITHIN_HEADER = "X-Mcu-Join-Within"
"""Request header the front adds to a WebSocket it passes on: seconds left (decimal) before the
socket must have joined a room; the front's deadline started when the client connected."""

FORWARDED_FOR_HEADER = "X-Forwarded-For"
"""Request header the front sets to the client's address. A worker trusts its last entry: only
the front and other workers reach a worker's socket."""

NODE_CREDENTIAL_HEADER = "X-Mcu-Node-Credential"
"""Request header on every call from one node of a cluster to another: the credential
:class:`mcu.crypto.clustercalls.NodeCredentials` signs for that one call (method, path and
body), naming the calling node by its id (``DATA_DIR/node-id``, the registry's name for it).
A node's front refuses a call carrying one that does not verify (403), and trusts the other
headers above on such a call only once it is valid."""

WORKER_HEADER = "X-Mcu-Worker"
"""Request header on an internal call from another node: which worker of the receiving node it
is for, a decimal index or :data:`ROOM_HOME_WORKER`; absent means :data:`ROOM_HOME_WORKER`. The
calling node cannot know which worker is a room's home there, only that node's front does; it
names a worker only to reach one it was told of (an edge's index in a ``RelayRequest``)."""

ROOM_HOME_WORKER: Final = "home"
""":data:`WORKER_HEADER` value: the worker that is home to the room the path names, as the
receiving node's front knows it (given a home there and then, if it has none yet)."""

CALLER_NODE_HEADER = "X-Mcu-Caller-Node"
"""Request header the front adds to an internal call from another node it passes to a worker:
the id of the node whose credential it verified. A worker trusts it (only its node's front and
workers reach its socket); the front removes it from every other request."""

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
"""Every route between processes starts with it. The front answers 404 to clients asking for
one, 403 to a call whose node credential does not verify, and passes a verified call from
another node to the worker :data:`WORKER_HEADER` names."""

ROOM_EXISTS_PATH = INTERNAL_PREFIX + "/rooms/{room}"
"""``GET``, front → any worker: :class:`RoomExistsReply`. The front gives a room a home only once
it exists."""

RELAYS_PATH = ROOM_EXISTS_PATH + "/relays"
"``POST`` :class:`RelayRequest`, edge → home: :class:`RelayReply`."

RELAY_PATH = RELAYS_PATH + "/{worker}"
"``DELETE``, edge → home, when the edge's last viewer of the room leaves: :class:`Done`."

VIEWERS_PATH = ROOM_EXISTS_PATH + "/viewers"
"``POST`` :class:`ViewersReport`, edge → home, as the edge's viewers change: :class:`Done`."

ADMIT_PATH = ROOM_EXISTS_PATH + "/admit"
"``POST`` :class:`AdmitRequest`, edge → home: :class:`AdmitReply`."

STAGE_PATH = ROOM_EXISTS_PATH + "/stage"
"``POST`` :class:`StageDescription`, home → edge, on every change of the stage: :class:`Done`."


def _room(room: str) -> str:
    return quote(room, safe="")


def is_internal(path: str) -> bool:
    """Whether ``path`` (without its query) is an internal route."""
    return path == INTERNAL_PREFIX or path.startswith(INTERNAL_PREFIX + "/")


def internal_room(path: str) -> str | None:
    """The room an internal route's path (percent-decoded) is about, if it names one."""
    parts = path.split("/")
    if len(parts) < 4 or "/".join(parts[:3]) != INTERNAL_PREFIX + "/rooms":
        return None
    room = parts[3]
    return room if 1 <= len(room) <= MAX_ROOM_ID_CHARS else None


def internal_worker(value: str | None, workers: int) -> int | Literal["home"] | None:
    """The worker a :data:`WORKER_HEADER` value names: an index below ``workers``,
    :data:`ROOM_HOME_WORKER` (also for an absent header), or None when it names none."""
    if value is None or value == ROOM_HOME_WORKER:
        return ROOM_HOME_WORKER
    if not (value.isascii() and value.isdigit()) or len(value) > _MAX_WORKER_DIGITS:
        return None
    index = int(value)
    return index if index < workers else None


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


# -- internal messages -----------------------------------------------------------------------

Role = Literal["chair", "participant", "viewer"]
"A role in a room, as :data:`mcu.crypto.tokens.Role` spells it (a unit test keeps them equal)."
Source = Literal["microphone", "camera", "content"]
"A track source, as :class:`mcu.media.TrackSource` spells it (a unit test keeps them equal)."

MAX_WATCHER_NAME_CHARS = 64
"A watcher's name is cut to this length where it is received, whatever the edge sent."

WorkerIndex = Annotated[StrictInt, Field(ge=0)]
NodeId = Annotated[StrictStr, StringConstraints(pattern=NODE_ID_PATTERN)]
"A node of the cluster: its id in the registry, as its calls' credentials name it."
RelayNonce = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z0-9_-]{22,64}$")]
"""A random nonce (at least 128 bits, URL-safe base64) that, with the cluster secret, keys the
SRTP of a relay between nodes; never a key itself."""
Port = Annotated[StrictInt, Field(ge=0, le=0xFFFF)]
Ssrc = Annotated[StrictInt, Field(ge=0, le=0xFFFFFFFF)]


class _Message(BaseModel):
    # A stray field means the two sides disagree: refuse rather than guess.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Done(_Message):
    """The empty reply: the request was applied."""


class RoomExistsReply(_Message):
    """Whether a room exists in the store the workers share."""

    exists: StrictBool


class RelayRequest(_Message):
    """An edge asks the room's home to relay the stage to it."""

    worker: WorkerIndex
    "The edge's worker index."
    host: StrictStr
    """The edge's relay socket: numeric address, reachable from the home's node (between nodes,
    the relay address of the edge's node, docs/cluster.md)."""
    port: Port
    "The edge's relay socket: UDP port."
    node: NodeId | None = None
    """The edge's node, when it is another node than the home's (it must be the node the call's
    credential names); None: a worker of the same node."""
    nonce: RelayNonce | None = None
    """The edge socket's nonce: the relay is SRTP, keyed from it and the reply's ``nonce``.
    Required from another node; None: plain RTP (workers of one node)."""
    home_node: NodeId | None = None
    """The room is homed on this other node. From a worker of the same node: the worker asked
    is this node's entry for the room (it takes the stage from another node and relays it to
    the node's other workers), and joins first if it has not yet. From another node: the worker
    asked is its node's entry, asked as a parent in the room's relay tree; it relays the stage
    it holds, and refuses (400) when it holds none."""


class CodecDescription(_Message):
    """A relayed stream's codec, as the publisher negotiated it."""

    mime_type: Annotated[StrictStr, StringConstraints(pattern=r"^[^/]*/[^/]*$")]
    "``type/subtype``, e.g. ``video/H264``."
    clock_rate: Annotated[StrictInt, Field(gt=0)]
    "RTP clock rate in Hz."
    channels: Annotated[StrictInt, Field(gt=0)] | None = None
    "Audio channels; None for video."
    parameters: tuple[tuple[StrictStr, StrictStr], ...] = ()
    "The format parameters as ``[name, value]`` pairs (``packetization-mode``...)."


class StreamDescription(_Message):
    """One stream of a relayed stage."""

    ssrc: Ssrc
    "Its relay SSRC (unique on the home)."
    track_id: StrictStr
    "The producer's track id on the home."
    participant_id: StrictStr
    "Who publishes it."
    source: Source
    "Microphone, camera or content."
    codec: CodecDescription
    "Its codec."


class StageDescription(_Message):
    """A room's whole stage as the home relays it: every stream, in stage order."""

    video: tuple[StreamDescription, ...]
    "Video streams, content first."
    audio: tuple[StreamDescription, ...]
    "Audio streams."


class RelayReply(_Message):
    """The home's answer to :class:`RelayRequest`."""

    relay: tuple[StrictStr, Port]
    "The home's relay socket the stage comes from (host, port)."
    stage: StageDescription
    "The stage now; later changes come as :data:`STAGE_PATH` requests."
    nonce: RelayNonce | None = None
    """The home's nonce, given when the request carried one: the relay is SRTP under the keys
    of both nonces (:mod:`mcu.crypto.relaykeys`)."""


def _cut_name(name: str) -> str:
    return name[:MAX_WATCHER_NAME_CHARS]


class Watcher(_Message):
    """One named WHEP viewer on an edge."""

    id: StrictStr
    "A random watcher id (never the session id, which would let anyone end the session)."
    name: Annotated[StrictStr, AfterValidator(_cut_name)]
    "The name the viewer gave (cut to :data:`MAX_WATCHER_NAME_CHARS`)."


class ViewersReport(_Message):
    """An edge's WHEP viewers of a room, sent home whenever they change."""

    worker: WorkerIndex
    "The edge's worker index."
    node: NodeId | None = None
    "The edge's node when it is another one (as for :class:`RelayRequest`)."
    count: Annotated[StrictInt, Field(ge=0)]
    "How many viewers it counts."
    watchers: tuple[Watcher, ...] = ()
    "The counted viewers by name (a meeting's participants see who watches)."


class AdmitRequest(_Message):
    """An edge asks the room's home to judge a WHEP viewer's bearer credential (the home keeps
    the room's wrong-password counts, so guesses spread over workers count once)."""

    token: StrictStr
    "The bearer credential."
    address: StrictStr
    "The viewer's address, for the throttle."


class Refusal(_Message):
    """Why a credential admits nobody."""

    code: StrictStr
    "Why, as admission names it: ``wrong_password``, ``bad_invite``, ``room_full``, ..."
    message: StrictStr
    "Human-readable reason."
    retry_after: float | None = None
    "Seconds to wait, for ``rate_limited``."


class AdmitReply(_Message):
    """The home's decision on an :class:`AdmitRequest`: a role (with ``own`` when the credential
    is a live participant's session token), or why it admits nobody."""

    own: StrictBool = False
    "The credential is a live participant's session token (its page is already in the room)."
    role: Role | None = None
    "The role it admits,"
    refused: Refusal | None = None
    "or why it admits nobody."
    name: Annotated[str, StringConstraints(max_length=64)] | None = None
    "The display name the credential gives (an access token's ``name``)."


# -- between nodes: the shared room store -----------------------------------------------------

ROOM_CHANGES_CHANNEL = "mcu:rooms:changes"
"""Redis pub/sub channel on which the shared room store announces each change to a room's
definition (a :class:`RoomChange` as JSON), in the same step as the change itself. Every worker
of every node listens, to apply it to the rooms it has live."""

RoomField = Literal[
    "title",
    "password_hash",
    "opens_at",
    "closes_at",
    "max_participants",
    "auto_record",
    "kind",
    "viewer_password_hash",
    "e2ee",
]
"A field of a room's definition an update may change."


class RoomChange(_Message):
    """A room's definition was changed or deleted through some node's admin API."""

    room: Annotated[StrictStr, StringConstraints(pattern=ROOM_ID_PATTERN)]
    "The room's id."
    change: Literal["updated", "deleted"]
    "What happened to it."
    fields: tuple[RoomField, ...] = ()
    "The fields an update changed (names only, never values: password hashes are among them)."
