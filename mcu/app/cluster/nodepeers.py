"""HTTP to other nodes of the cluster: internal calls signed with this node's credential.

The same shape as :class:`mcu.app.cluster.peers.WorkerPeers`, for the network instead of the
node's own Unix sockets. A node is named by its id in the registry (``DATA_DIR/node-id``), in
the credentials as everywhere; :class:`ClusterNodes` finds where a node is reached (its advertise
URL) in the registry. Every request carries
:data:`~mcu.contracts.cluster.NODE_CREDENTIAL_HEADER` made for its method, path (with its query,
sent exactly as signed) and the exact body bytes, so the receiving node
(:mod:`mcu.signaling.endpoints.nodecalls`) can check all three.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from pydantic import BaseModel
from redis.exceptions import RedisError
from yarl import URL

from mcu.app.cluster.peers import close_sessions, json_reply
from mcu.app.cluster.registry import NodeRegistry, load_or_create_node_id
from mcu.app.config import Config
from mcu.contracts.cluster import NODE_CREDENTIAL_HEADER, ROOM_HOME_WORKER, WORKER_HEADER
from mcu.crypto.clustercalls import NodeCredentials

__all__ = ["ClusterNodes", "NodePeers", "NodeUnavailable", "cluster_secret", "node_credentials"]

REQUEST_TIMEOUT = 10.0
"Default bound, in seconds, on one request to another node."


class NodeUnavailable(Exception):
    """Another node could not be reached (down, unreachable, or too slow to answer)."""


def cluster_secret(config: Config) -> bytes:
    """The cluster secret as key material (only call on a clustered configuration)."""
    if config.cluster_secret is None:
        raise ValueError("this server is no node of a cluster")
    return config.cluster_secret.get_secret_value().encode()


def node_credentials(config: Config) -> NodeCredentials | None:
    """This node's credentials, naming it by its id (made by the front before its workers
    start); None when it is no node of a cluster."""
    if not config.clustered:
        return None
    return NodeCredentials(cluster_secret(config), load_or_create_node_id(config.data_dir))


class NodePeers:
    """Client sessions to other nodes, one per node, created on first use.

    ``limit`` bounds the connections open to one node. Sessions keep no cookies.
    """

    def __init__(self, credentials: NodeCredentials, *, limit: int = 100) -> None:
        self.credentials = credentials
        self._limit = limit
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, node: str) -> aiohttp.ClientSession:
        """The session for ``node`` (its advertised ``http(s)://host:port``)."""
        session = self._sessions.get(node)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._sessions[node] = session
        return session

    async def request(
        self,
        node: str,
        method: str,
        path: str,
        body: BaseModel | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = REQUEST_TIMEOUT,
    ) -> tuple[int, Any]:
        """Send one signed request to ``node`` (``path`` percent-encoded, starting with ``/``;
        ``body`` as JSON when not None) and return the status and the decoded JSON reply
        (None when the reply is not JSON).

        Raises :class:`NodeUnavailable` when the node cannot be reached in ``timeout`` s.
        """
        if not path.startswith("/"):
            raise ValueError(f"not an absolute path: {path!r}")
        data = b"" if body is None else body.model_dump_json().encode()
        all_headers = dict(headers or {})
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        all_headers[NODE_CREDENTIAL_HEADER] = self.credentials.sign(method, path, data)
        # encoded=True: the path goes out byte for byte as it was signed.
        url = URL(node.rstrip("/") + path, encoded=True)
        try:
            async with self.session(node).request(
                method,
                url,
                data=data if body is not None else None,
                headers=all_headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                status = response.status
                content_type = response.content_type
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise NodeUnavailable(f"node {node}: {method} {path}: {exc!r}") from exc
        return status, json_reply(content_type, raw)

    async def close(self) -> None:
        """Close every session (bounded: a stuck close is abandoned after a few seconds)."""
        sessions, self._sessions = list(self._sessions.values()), {}
        await close_sessions(sessions)


URL_CACHE_S = 2.0
"""How long a node's advertise URL is used without reading the registry again: a node that dies
is then no longer asked after its entry expires."""


class ClusterNodes:
    """Calls to a worker of another node named by its id (the relays' ``Nodes``): where the
    node is reached comes from the registry, and the worker is named in ``X-Mcu-Worker``."""

    def __init__(self, peers: NodePeers, registry: NodeRegistry) -> None:
        self.peers = peers
        self.registry = registry
        self._urls: dict[str, tuple[str, float]] = {}

    async def url(self, node: str) -> str:
        """``node``'s advertise URL; :class:`NodeUnavailable` when it is not a live node."""
        now = time.monotonic()
        known = self._urls.get(node)
        if known is not None and now - known[1] < URL_CACHE_S:
            return known[0]
        try:
            record = await self.registry.node(node)
        except (RedisError, OSError) as exc:  # Redis unreachable: the node cannot be found now
            raise NodeUnavailable(f"node {node}: registry unreadable: {exc!r}") from exc
        if record is None:
            self._urls.pop(node, None)
            raise NodeUnavailable(f"node {node} is not in the registry")
        self._urls[node] = (record.url, now)
        return record.url

    async def alive(self, node: str) -> bool:
        """Whether ``node`` is in the registry; True when Redis does not answer (a home does
        not end its relays over a Redis outage)."""
        try:
            return await self.registry.node(node) is not None
        except (RedisError, OSError):
            return True

    async def request(
        self, node: str, worker: int | None, method: str, path: str, body: BaseModel | None = None
    ) -> tuple[int, Any]:
        """One signed call to ``worker`` of ``node`` (None: the home worker of the path's
        room there)."""
        headers = {WORKER_HEADER: ROOM_HOME_WORKER if worker is None else str(worker)}
        return await self.peers.request(await self.url(node), method, path, body, headers)
