"""What the nodes of a cluster agree on through Redis: the node registry and room homes.

Every node's front writes its :class:`NodeRecord` under :func:`node_key` with a TTL of
:data:`NODE_TTL_S` and refreshes it every :data:`HEARTBEAT_S`; a node that stops (SIGKILL, a
dead machine) drops out of the registry when its key expires. A room's home node is named under
:func:`home_key`, claimed atomically and refreshed by its home (docs/cluster.md, "Keys in
Redis"). Both sides import this module and nothing else of each other.

It is the bottom layer: it imports nothing of ``mcu``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

__all__ = [
    "HEARTBEAT_S",
    "HOME_TTL_S",
    "NODES_KEY",
    "NODE_ID_PATTERN",
    "NODE_TTL_S",
    "NodeRecord",
    "home_key",
    "node_key",
]

NODE_ID_PATTERN = r"^[a-z0-9-]{1,64}$"
"A node id: lower-case letters, digits and dashes, safe in a Redis key and a log line."

HEARTBEAT_S = 1.0
"How often a node refreshes its registry entry and the homes of its rooms."
NODE_TTL_S = 5.0
"""A registry entry lives this long without a heartbeat: four missed beats (a slow Redis
answer, a pause in the event loop) keep a node listed; a dead node is gone within 5 s."""
HOME_TTL_S = 30.0
"""A room's home key lives this long without a refresh. Its home refreshes it every heartbeat,
so it only expires once the home is gone; other nodes do not wait for that: a home whose node
has left the registry is taken over at once (docs/cluster.md, "A node dies")."""

NODES_KEY = "mcu:nodes"
"Set of the ids of nodes that registered; an id whose :func:`node_key` expired is dropped."


def node_key(node: str) -> str:
    """The registry key of ``node`` (a JSON :class:`NodeRecord`, TTL :data:`NODE_TTL_S`)."""
    return f"mcu:node:{node}"


def home_key(room: str) -> str:
    """The key naming ``room``'s home node (its id; TTL :data:`HOME_TTL_S`)."""
    return f"mcu:home:{room}"


Count = Annotated[StrictInt, Field(ge=0)]


class NodeRecord(BaseModel):
    """One node as it registers itself, with its load at its last heartbeat."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: Annotated[StrictStr, Field(pattern=NODE_ID_PATTERN)]
    "The node's id (kept in ``DATA_DIR/node-id``)."
    url: StrictStr
    "Its advertise URL: where other nodes and clients reach it."
    workers: Annotated[StrictInt, Field(ge=1)]
    "How many worker processes it runs."
    rooms: Count = 0
    "Live rooms on its workers."
    participants: Count = 0
    "Participants in those rooms."
    viewers: Count = 0
    "WHEP viewers it serves."
    load: Annotated[StrictFloat, Field(ge=0)] = 0.0
    "The machine's one-minute load average (runnable processes; compare with ``workers``)."
    started: StrictFloat
    "When the node started (Unix time)."
    updated: StrictFloat
    "When it wrote this record (Unix time)."
