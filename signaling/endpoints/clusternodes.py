"""``GET /api/cluster/nodes``: the live nodes of a cluster and their load, for the admin.

Served under the admin API's authentication (:func:`mcu.signaling.endpoints.admin.setup_admin_api`
mounts it); the registry comes in through :class:`ClusterNodes`, so this module needs nothing of
Redis.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from mcu.contracts.nodes import NodeRecord
from mcu.infra.httpapi import ApiError

__all__ = ["ClusterNodes", "cluster_nodes_handler"]


class ClusterNodes(Protocol):
    """The cluster's node registry as the admin API reads it."""

    async def listing(self) -> list[NodeRecord] | None:
        """Every live node, or None when the registry cannot be read now."""
        ...


def cluster_nodes_handler(
    nodes: ClusterNodes | None,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler over ``nodes`` (None on a server that is no node of a cluster: 404)."""

    async def handler(request: web.Request) -> web.Response:
        if nodes is None:
            raise ApiError(404, "not_clustered", "this server runs alone (no redis_url)")
        listing = await nodes.listing()
        if listing is None:
            raise ApiError(503, "registry_unavailable", "Redis does not answer; try again")
        return web.json_response({"nodes": [record.model_dump() for record in listing]})

    return handler
