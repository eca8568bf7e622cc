"""When a node believes the registry that another node is dead: always, except for one TTL
after its own heartbeat to Redis failed and worked again."""

from __future__ import annotations

import pytest

from mcu.app.cluster.registrytrust import RegistryTrust


@pytest.mark.parametrize(
    ("events", "now", "trusted"),
    [
        ([], 0.0, True),  # a node that never lost Redis
        ([("ok", 1.0)], 2.0, True),
        ([("fail", 1.0)], 2.0, False),  # Redis away: nothing is taken over anyway
        ([("fail", 1.0), ("ok", 3.0)], 3.0, False),  # back: others may not have beaten yet
        ([("fail", 1.0), ("ok", 3.0)], 7.9, False),
        ([("fail", 1.0), ("ok", 3.0)], 8.0, True),  # one TTL later every live node has
        ([("fail", 1.0), ("ok", 3.0), ("ok", 4.0)], 8.0, True),  # later beats move nothing
        ([("fail", 1.0), ("ok", 3.0), ("fail", 9.0), ("ok", 10.0)], 14.0, False),
        ([("fail", 1.0), ("ok", 3.0), ("fail", 9.0), ("ok", 10.0)], 15.0, True),
    ],
)
def test_absences_are_doubted_for_one_ttl_after_an_outage(
    events: list[tuple[str, float]], now: float, trusted: bool
) -> None:
    trust = RegistryTrust(settle_s=5.0)
    for outcome, at in events:
        if outcome == "ok":
            trust.succeeded(at)
        else:
            trust.failed()
    assert trust.trusted(now) is trusted
