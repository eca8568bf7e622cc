"""When this node may believe the registry's word that another node is dead.

A node absent from the registry is dead only if it has had the chance to beat: while Redis was
unreachable (its primary killed, Sentinel still promoting the replica) no node could write its
entry, and a failover slower than :data:`~mcu.contracts.nodes.NODE_TTL_S` lets every entry
expire in the promoted replica. The first node to reach Redis again would then find every
other node "dead" and take their live rooms over, splitting each room in two (the old home
keeps its participants, new joins go to the new one).

So after its own heartbeat has failed, a node waits one TTL from the first heartbeat that
works again before it takes over any room: every live node, beating each second, has written
its entry back by then, and a node still missing is truly gone. Until then a request for such a
room is answered "try again" (503, a WebSocket closed with 1013), as while its home is unknown.
Claiming a room that has no home at all is not held back: no node holds it.

Pure: the heartbeat reports its outcomes with the time, routing asks with the time.
"""

from __future__ import annotations

from mcu.contracts.nodes import NODE_TTL_S

__all__ = ["RegistryTrust"]


class RegistryTrust:
    """Whether, at a given time, an absence from the registry means a dead node."""

    __slots__ = ("_failing", "_settle_s", "_trusted_from")

    def __init__(self, settle_s: float = NODE_TTL_S) -> None:
        """``settle_s``: how long after Redis answers again absences are still doubted."""
        self._settle_s = settle_s
        self._failing = False
        self._trusted_from = float("-inf")

    def failed(self) -> None:
        """A heartbeat could not reach Redis."""
        self._failing = True

    def succeeded(self, now: float) -> None:
        """A heartbeat reached Redis at ``now`` (monotonic seconds)."""
        if self._failing:
            self._failing = False
            self._trusted_from = now + self._settle_s

    def trusted(self, now: float) -> bool:
        """True when a node missing from the registry at ``now`` may be taken for dead."""
        return not self._failing and now >= self._trusted_from

    @property
    def settle_s(self) -> float:
        """How long absences are doubted after an outage."""
        return self._settle_s
