"""The browser client's reconnect timing (signaling/web/backoff.js) and what a resumed session
starts from (room-state.js `resumedRoom`), as tables run in headless Chromium: pure functions,
time passed in as data, no server of ours behind them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.chromium import CHROMIUM_PATH, Chromium, chromium_available
from tests.e2e.test_room_state import static_url  # noqa: F401 (the fixture)

pytestmark = pytest.mark.skipif(
    not chromium_available(),
    reason=f"no Chromium at {CHROMIUM_PATH} (Debian package `chromium`; CI installs it)",
)

HARNESS = """
window.schedule = async (cases) => {
  const { backoffDelay, nextRetry } = await import("/static/backoff.js");
  return cases.map(([fn, args]) =>
    fn === "delay" ? backoffDelay(...args) : nextRetry(args),
  );
};
window.resumed = async ({ before, joined }) => {
  const room = await import("/static/room-state.js");
  const plain = (value) =>
    JSON.parse(JSON.stringify(value, (_, v) => (v instanceof Map ? Object.fromEntries(v) : v)));
  let state = room.joinedRoom(before.joined);
  state = room.withReceived(state, before.received);
  state = room.withOwnTracks(state, Object.entries(before.ownTracks));
  state = room.withOwnMute(state, "camera", true);
  return plain(room.resumedRoom(state, joined));
};
true
"""

# (function, arguments, expected milliseconds or None)
SCHEDULE: list[tuple[str, Any, float | None]] = [
    # backoffDelay(attempt, random): between half and all of 0.5 s * 2^(attempt-1), up to 8 s.
    ("delay", [1, 0.0], 250),
    ("delay", [1, 0.999999], 499.99975),
    ("delay", [2, 0.5], 750),
    ("delay", [3, 0.0], 1000),
    ("delay", [5, 1.0], 8000),
    ("delay", [6, 0.0], 4000),  # capped: half of 8 s ...
    ("delay", [60, 1.0], 8000),  # ... for ever, without overflowing
    ("delay", [1000, 0.5], 6000),
    ("delay", [0, 0.0], 250),  # nonsense attempts count as the first
    ("delay", [2, -3], 500),  # a random number out of range is clamped
    ("delay", [2, 7], 1000),
    ("delay", [3, 0.5, {"firstMs": 100, "factor": 3, "maxMs": 10000}], 675),
    # nextRetry: the same, but never past the deadline (when the server stops waiting) ...
    ("next", {"attempt": 4, "now": 1000, "deadline": 31000, "random": 0.0}, 2000),
    ("next", {"attempt": 6, "now": 29000, "deadline": 31000, "random": 1.0}, 2000),
    # ... and nothing at or after it.
    ("next", {"attempt": 7, "now": 31000, "deadline": 31000, "random": 0.5}, None),
    ("next", {"attempt": 1, "now": 40000, "deadline": 31000, "random": 0.5}, None),
]


async def test_backoff_schedule(static_url: str) -> None:  # noqa: F811 (the fixture)
    async with Chromium() as browser:
        page = await browser.open(static_url)
        await page.wait_for("document.readyState === 'complete'", timeout=10)
        assert await page.evaluate(HARNESS) is True
        cases = [[fn, args] for fn, args, _ in SCHEDULE]
        got = await page.evaluate(f"window.schedule({json.dumps(cases)})")
        # A full schedule: 30 s of grace, the network back after 20 s, the worst draws.
        total, attempt, tries = 0.0, 1, []
        while True:
            wait = await page.evaluate(
                "(async () => (await import('/static/backoff.js')).nextRetry("
                f"{{attempt: {attempt}, now: {total}, deadline: 30000, random: 1}}))()"
            )
            if wait is None:
                break
            total += wait
            tries.append(total)
            attempt += 1
    assert [pytest.approx(e) if e is not None else None for _, _, e in SCHEDULE] == got
    # Tries at 0.5, 1.5, 3.5, 7.5, 15.5, 23.5 s, one just at the deadline, then none: bounded.
    assert tries == [500, 1500, 3500, 7500, 15500, 23500, 30000]


async def test_a_resumed_session_keeps_our_mutes_and_takes_the_room_as_it_is(
    static_url: str,  # noqa: F811 (the fixture)
) -> None:
    ben = {"id": "ben", "name": "Ben", "role": "participant", "tracks": []}
    before = {
        "joined": {
            "participant": {"id": "me", "name": "Ann", "role": "chair"},
            "participants": [ben],
        },
        "received": [{"trackId": "t9", "participantId": "ben", "kind": "audio", "track": "<t9>"}],
        "ownTracks": {"microphone": "t1"},
    }
    mine = [
        {
            "id": "t1",
            "participant_id": "me",
            "kind": "audio",
            "source": "microphone",
            "muted": False,
        },
        {"id": "t2", "participant_id": "me", "kind": "video", "source": "camera", "muted": True},
    ]
    cai = {"id": "cai", "name": "Cai", "role": "participant", "tracks": [], "reconnecting": True}
    joined = {
        "resumed": True,
        "participant": {"id": "me", "name": "Ann", "role": "chair", "tracks": mine},
        "participants": [cai],  # Ben left while we were away; Cai is away now
    }
    async with Chromium() as browser:
        page = await browser.open(static_url)
        await page.wait_for("document.readyState === 'complete'", timeout=10)
        assert await page.evaluate(HARNESS) is True
        state = await page.evaluate(
            f"window.resumed({json.dumps({'before': before, 'joined': joined})})"
        )
    assert state["me"] == "me"
    assert list(state["participants"]) == ["cai"] and state["reconnecting"] == ["cai"]
    assert state["ownTracks"] == {"microphone": "t1", "camera": "t2"}  # what the server kept
    assert state["muted"] == {"microphone": False, "camera": True}  # ours, as they were
    assert state["received"] == {}  # the new subscribe connection will say
