"""Which worker of this node takes a new WHEP viewer: a pure tally, polled and counted by the
front (:mod:`mcu.app.cluster.front`)."""

from __future__ import annotations

__all__ = ["ViewerBalance"]


class ViewerBalance:
    """Picks the worker for a new WHEP viewer: the fewest viewers at the last poll plus those
    routed since; a worker that did not answer the last poll gets none while others answer."""

    def __init__(self, count: int) -> None:
        self.polled = [0] * count
        self.routed = [0] * count
        self.up = [True] * count

    def pick(self) -> int:
        """The worker for one new viewer (counted at once)."""
        candidates = [i for i, up in enumerate(self.up) if up] or list(range(len(self.up)))
        worker = min(candidates, key=lambda i: (self.polled[i] + self.routed[i], i))
        self.routed[worker] += 1
        return worker

    def update(self, worker: int, viewers: int | None) -> None:
        """A poll's result: ``viewers`` on ``worker``, or None when it did not answer."""
        self.up[worker] = viewers is not None
        if viewers is not None:
            self.polled[worker] = viewers
            self.routed[worker] = 0
