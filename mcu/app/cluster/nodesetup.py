"""Makes this process's :class:`~mcu.app.cluster.node.ClusterNode` from the configuration."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from mcu.app.cluster.cascade import NodeCascade
from mcu.app.cluster.homes import RoomHomes
from mcu.app.cluster.node import ClusterNode, Health
from mcu.app.cluster.registry import NodeClash, NodeRegistry, load_or_create_node_id
from mcu.app.config import Config
from mcu.crypto.clustercalls import NodeCredentials
from mcu.infra.redisconn import connect_redis, parse_redis_url

__all__ = ["start_node"]

logger = logging.getLogger(__name__)


async def start_node(config: Config, workers: int, health: Health) -> ClusterNode | None:
    """This node, registered and beating with the load ``health`` reports; None (the reason
    logged) when it cannot join the cluster: Redis does not answer, another live node holds its
    id, or the id file is damaged."""
    assert config.redis_url is not None and config.advertise_url is not None
    assert config.cluster_secret is not None
    try:
        node_id = load_or_create_node_id(config.data_dir)
    except (ValueError, OSError) as exc:
        logger.error("cannot join the cluster: %s", exc)
        return None
    redis = connect_redis(parse_redis_url(config.redis_url), name=f"mcu-{node_id}")
    registry = NodeRegistry(redis)
    node = ClusterNode(
        node_id=node_id,
        url=config.advertise_url,
        workers=workers,
        registry=registry,
        homes=RoomHomes(redis, registry, node_id),
        credentials=NodeCredentials(config.cluster_secret.get_secret_value().encode(), node_id),
    )
    node.cascade = NodeCascade(lambda: node.latest, registry.listing)
    try:
        await node.start(health)
    except (NodeClash, RedisError, OSError) as exc:
        logger.error("cannot join the cluster: %s", exc)
        await node.close()
        return None
    return node
