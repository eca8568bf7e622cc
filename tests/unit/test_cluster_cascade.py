"""Where a new WHEP viewer of a room homed elsewhere is served: here until this node is full,
then on the live node with the most room left (a table)."""

from __future__ import annotations

import pytest

from mcu.app.cluster.cascade import VIEWERS_PER_WORKER, NodeCascade, room_left, viewer_node
from mcu.contracts.nodes import NodeRecord

FULL = VIEWERS_PER_WORKER


def node(name: str, viewers: int, workers: int = 1) -> NodeRecord:
    return NodeRecord(
        node=name,
        url=f"http://{name}:8080",
        workers=workers,
        viewers=viewers,
        started=0.0,
        updated=0.0,
    )


@pytest.mark.parametrize(
    ("me", "others", "expected"),
    [
        (None, [], None),  # before the first heartbeat: serve
        (node("a", 0), [node("b", 0)], None),
        (node("a", FULL - 1), [node("b", 0)], None),  # one place left: serve here
        (node("a", FULL), [node("b", 10), node("c", 5)], "c"),  # full: most room left
        (node("a", FULL), [node("b", 10, workers=2), node("c", 5)], "b"),
        (node("a", FULL), [node("b", FULL), node("c", FULL + 3)], None),  # all full: stay
        (node("a", FULL + 1, workers=1), [node("a", 0)], None),  # never itself
        (node("a", FULL, workers=2), [node("b", 0)], None),  # two workers hold twice as many
    ],
)
def test_viewer_node(me: NodeRecord | None, others: list[NodeRecord], expected: str | None) -> None:
    chosen = viewer_node(me, others)
    assert (chosen.node if chosen is not None else None) == expected


def test_room_left() -> None:
    assert room_left(node("a", 10, workers=2)) == 2 * FULL - 10
    assert room_left(node("a", FULL + 5)) == -5


async def test_the_registry_is_read_only_when_full() -> None:
    reads: list[int] = []
    me: list[NodeRecord | None] = [node("a", 3)]

    async def live() -> list[NodeRecord] | None:
        reads.append(1)
        return [node("b", 0)]

    cascade = NodeCascade(lambda: me[0], live)
    home = node("h", 0)
    assert await cascade.viewer_node("ward", home) is None
    assert reads == []
    me[0] = node("a", FULL)
    chosen = await cascade.viewer_node("ward", home)
    assert chosen is not None and chosen.node == "b" and reads == [1]
