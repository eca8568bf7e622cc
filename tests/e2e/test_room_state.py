"""The room page's reducer (signaling/web/room-state.js) as a table, run in headless Chromium.

The reducer is pure: a state and a server message in, the next state and the page's effects out.
Each case builds a state from a `joined` reply, feeds one message and compares the next state and
the effects with the table; state the case does not name must come out as it went in, and the
state passed in must never change (the page keeps states it has handed out). The module is loaded
as the browser loads it, an ES module from the installed package's `web/` folder, with no
server of ours behind it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.e2e.chromium import CHROMIUM_PATH, Chromium, chromium_available

pytestmark = pytest.mark.skipif(
    not chromium_available(),
    reason=f"no Chromium at {CHROMIUM_PATH} (Debian package `chromium`; CI installs it)",
)

WEB_ROOT = Path(str(resources.files("mcu.signaling") / "web"))

# Builds the case's state, reduces one message, and returns everything as JSON (Maps as objects).
HARNESS = """
window.reduceCase = async ({ setup, message }) => {
  const room = await import("/static/room-state.js");
  const plain = (value) =>
    JSON.parse(JSON.stringify(value, (_, v) => (v instanceof Map ? Object.fromEntries(v) : v)));
  let state = room.joinedRoom(setup.joined);
  state = room.withReceived(state, setup.received ?? []);
  state = room.withOwnTracks(state, Object.entries(setup.ownTracks ?? {}));
  for (const [source, muted] of Object.entries(setup.muted ?? {})) {
    state = room.withOwnMute(state, source, muted);
  }
  const before = plain(state);
  const result = room.reduce(state, message);
  return {
    before,
    after: plain(state),
    next: plain(result.state),
    effects: plain(result.effects),
  };
};
window.viewOf = async ({ setup, participantId }) => {
  const room = await import("/static/room-state.js");
  let state = room.withReceived(room.joinedRoom(setup.joined), setup.received ?? []);
  if (setup.activeSpeaker) {
    state = room.reduce(state, { type: "active_speaker", participant_id: setup.activeSpeaker })
      .state;
  }
  return room.participantView(state, state.participants.get(participantId));
};
true
"""


def track(track_id: str, owner: str, source: str, muted: bool = False) -> dict[str, Any]:
    kind = "audio" if source == "microphone" else "video"
    return {"id": track_id, "participant_id": owner, "kind": kind, "source": source, "muted": muted}


def carried(track_id: str, owner: str, source: str, mid: str) -> dict[str, Any]:
    kind = "audio" if source == "microphone" else "video"
    # The MediaStreamTrack is opaque to the reducer: a string stands in for it.
    return {
        "trackId": track_id,
        "participantId": owner,
        "kind": kind,
        "source": source,
        "mid": mid,
        "track": f"<{track_id}>",
    }


BEN_MIC = track("t-ben-mic", "ben", "microphone")
BEN_CAM = track("t-ben-cam", "ben", "camera")
JOINED = {
    "participant": {"id": "me", "name": "Ann", "role": "chair", "tracks": []},
    "participants": [
        {"id": "ben", "name": "Ben", "role": "participant", "tracks": [BEN_MIC, BEN_CAM]},
        {"id": "cai", "name": "Cai", "role": "participant", "tracks": []},
    ],
}
RECEIVED = [
    carried("t-ben-mic", "ben", "microphone", "0"),
    carried("t-ben-cam", "ben", "camera", "1"),
    carried("t-cai-content", "cai", "content", "2"),
]
SETUP = {"joined": JOINED, "received": RECEIVED, "ownTracks": {"microphone": "t-me-mic"}}
RENDER = {"type": "render"}
CONTROLS = {"type": "controls"}
BEN = {"id": "ben", "name": "Ben", "role": "participant"}
BEN_TRACKS = {"t-ben-mic": BEN_MIC, "t-ben-cam": BEN_CAM}
CAI = {"id": "cai", "name": "Cai", "role": "participant", "tracks": {}}


def notice(text: str) -> dict[str, str]:
    return {"type": "notice", "text": text}


def received_without(*track_ids: str) -> dict[str, Any]:
    return {r["trackId"]: r for r in RECEIVED if r["trackId"] not in track_ids}


def forward(to: str, message: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return {}, [{"type": "forward", "to": to, "message": message}]


OFFER = {"type": "subscribe_offer", "sdp": "v=0...", "tracks": []}
# Ben's connection was lost before we joined: `joined` lists him as reconnecting.
BEN_AWAY = {
    **SETUP,
    "joined": {
        **JOINED,
        "participants": [
            {**JOINED["participants"][0], "reconnecting": True},
            *JOINED["participants"][1:],
        ],
    },
}
DAN = {
    "id": "dan",
    "name": "Dan",
    "role": "participant",
    "tracks": [track("t-dan", "dan", "camera")],
}

# (case, setup, message, the state's changed fields, the effects)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], list[dict[str, Any]]]] = [
    ("subscribe offer is answered", SETUP, OFFER, {}, [{"type": "answer", "offer": OFFER}]),
    (
        "a participant joins with a track",
        SETUP,
        {"type": "participant_joined", "participant": DAN},
        {
            "participants": {
                "ben": {**BEN, "tracks": BEN_TRACKS},
                "cai": CAI,
                "dan": {**DAN, "tracks": {"t-dan": DAN["tracks"][0]}},
            }
        },
        [notice("Dan joined."), RENDER],
    ),
    (
        "a participant leaves: their received tracks and tile go",
        SETUP,
        {"type": "participant_left", "participant_id": "ben", "reason": "left"},
        {"participants": {"cai": CAI}, "received": received_without("t-ben-mic", "t-ben-cam")},
        [{"type": "drop_tile", "participantId": "ben"}, notice("Ben left."), RENDER],
    ),
    (
        "a demoted speaker goes back to the audience",
        SETUP,
        {"type": "participant_left", "participant_id": "cai", "reason": "demoted"},
        {
            "participants": {"ben": {**BEN, "tracks": BEN_TRACKS}},
            "received": received_without("t-cai-content"),
        },
        [
            {"type": "drop_tile", "participantId": "cai"},
            notice("Cai is back in the audience."),
            RENDER,
        ],
    ),
    (
        "a participant's connection is lost: their tile says they are reconnecting",
        SETUP,
        {"type": "participant_reconnecting", "participant_id": "ben"},
        {"reconnecting": ["ben"]},
        [notice("Ben is reconnecting…"), RENDER],
    ),
    (
        "they are back: the same participant, nothing else changes",
        BEN_AWAY,
        {"type": "participant_back", "participant_id": "ben"},
        {"reconnecting": []},
        [notice("Ben is back."), RENDER],
    ),
    (
        "back without having been away (a repeated message): nothing",
        SETUP,
        {"type": "participant_back", "participant_id": "ben"},
        {},
        [],
    ),
    (
        "someone unknown is reconnecting: nothing",
        SETUP,
        {"type": "participant_reconnecting", "participant_id": "zed"},
        {},
        [],
    ),
    (
        "the grace period passed: they leave and are no longer waited for",
        BEN_AWAY,
        {"type": "participant_left", "participant_id": "ben", "reason": "disconnected"},
        {
            "participants": {"cai": CAI},
            "received": received_without("t-ben-mic", "t-ben-cam"),
            "reconnecting": [],
        },
        [{"type": "drop_tile", "participantId": "ben"}, notice("Ben left."), RENDER],
    ),
    (
        "someone unknown leaves: no notice",
        SETUP,
        {"type": "participant_left", "participant_id": "zed", "reason": "left"},
        {},
        [{"type": "drop_tile", "participantId": "zed"}, RENDER],
    ),
    (
        "a track is published",
        SETUP,
        {"type": "track_published", "track": track("t-cai-cam", "cai", "camera")},
        {
            "participants": {
                "ben": {**BEN, "tracks": BEN_TRACKS},
                "cai": {**CAI, "tracks": {"t-cai-cam": track("t-cai-cam", "cai", "camera")}},
            }
        },
        [RENDER],
    ),
    (
        "a track of someone unknown is published: nothing changes",
        SETUP,
        {"type": "track_published", "track": track("t-zed", "zed", "camera")},
        {},
        [RENDER],
    ),
    (
        "a track is unpublished: no longer listed or received",
        SETUP,
        {"type": "track_unpublished", "participant_id": "ben", "track_id": "t-ben-cam"},
        {
            "participants": {"ben": {**BEN, "tracks": {"t-ben-mic": BEN_MIC}}, "cai": CAI},
            "received": received_without("t-ben-cam"),
        },
        [RENDER],
    ),
    (
        "the server ends our content: we stop sending it",
        {**SETUP, "ownTracks": {"microphone": "t-me-mic", "content": "t-me-content"}},
        {"type": "track_unpublished", "participant_id": "me", "track_id": "t-me-content"},
        {"ownTracks": {"microphone": "t-me-mic"}},
        [{"type": "content_ended"}, RENDER],
    ),
    (
        "our microphone unpublished is not our content",
        {**SETUP, "ownTracks": {"microphone": "t-me-mic", "content": "t-me-content"}},
        {"type": "track_unpublished", "participant_id": "me", "track_id": "t-me-mic"},
        {},
        [RENDER],
    ),
    (
        "someone else's track is muted",
        SETUP,
        {
            "type": "track_muted",
            "participant_id": "ben",
            "track_id": "t-ben-mic",
            "source": "microphone",
            "muted": True,
            "by": "self",
        },
        {
            "participants": {
                "ben": {
                    **BEN,
                    "tracks": {"t-ben-mic": {**BEN_MIC, "muted": True}, "t-ben-cam": BEN_CAM},
                },
                "cai": CAI,
            }
        },
        [RENDER],
    ),
    (
        "the chair mutes our microphone",
        SETUP,
        {
            "type": "track_muted",
            "participant_id": "me",
            "track_id": "t-me-mic",
            "source": "microphone",
            "muted": True,
            "by": "chair",
        },
        {"muted": {"microphone": True, "camera": False}},
        [
            {"type": "local_mute", "source": "microphone", "muted": True},
            notice("The chair muted your microphone."),
            CONTROLS,
        ],
    ),
    (
        "our own unmute echoed: followed without a notice",
        {**SETUP, "muted": {"microphone": True}},
        {
            "type": "track_muted",
            "participant_id": "me",
            "track_id": "t-me-mic",
            "source": "microphone",
            "muted": False,
            "by": "self",
        },
        {"muted": {"microphone": False, "camera": False}},
        [{"type": "local_mute", "source": "microphone", "muted": False}, CONTROLS],
    ),
    (
        "a mute we already have changes nothing but the buttons",
        {**SETUP, "muted": {"camera": True}},
        {
            "type": "track_muted",
            "participant_id": "me",
            "track_id": "t-me-cam",
            "source": "camera",
            "muted": True,
            "by": "chair",
        },
        {},
        [CONTROLS],
    ),
    (
        "the chair turns our camera off: no notice for a camera",
        SETUP,
        {
            "type": "track_muted",
            "participant_id": "me",
            "track_id": "t-me-cam",
            "source": "camera",
            "muted": True,
            "by": "chair",
        },
        {"muted": {"microphone": False, "camera": True}},
        [{"type": "local_mute", "source": "camera", "muted": True}, CONTROLS],
    ),
    (
        "the active speaker changes",
        SETUP,
        {"type": "active_speaker", "participant_id": "ben"},
        {"activeSpeaker": "ben"},
        [RENDER],
    ),
    (
        "removed by the chair",
        SETUP,
        {"type": "removed", "reason": "disruptive"},
        {},
        [
            {
                "type": "end",
                "state": "left",
                "text": "The chair removed you from the room.",
                "error": {"code": "removed", "message": "disruptive"},
            }
        ],
    ),
    (
        "the room ends",
        SETUP,
        {"type": "room_ended"},
        {},
        [
            {
                "type": "end",
                "state": "left",
                "text": "The room has ended. Thank you.",
                "error": {"code": "room_ended", "message": "ended"},
            }
        ],
    ),
    (
        "the server no longer knows the session",
        SETUP,
        {"type": "error", "code": "not_joined", "message": "join first"},
        {},
        [
            {
                "type": "end",
                "state": "error",
                "text": "The server ended your session.",
                "error": {"code": "not_joined", "message": "join first"},
            }
        ],
    ),
    (
        "a refused chair action is explained",
        SETUP,
        {"type": "error", "id": "c7", "code": "forbidden", "message": "chair only"},
        {},
        [
            {"type": "fail", "error": {"code": "forbidden", "message": "chair only"}},
            notice("Only the chair can do that."),
        ],
    ),
    (
        "an error code the page has no words for: the server's",
        SETUP,
        # A code newer than the page's catalogues (docs/languages.md: by code, English fallback).
        {"type": "error", "code": "newer_code", "message": "no media sections"},
        {},
        [
            {"type": "fail", "error": {"code": "newer_code", "message": "no media sections"}},
            notice("no media sections"),
        ],
    ),
    (
        "room mode goes to the view",
        SETUP,
        {"type": "room_mode", "mode": "mixed"},
        *forward("view", {"type": "room_mode", "mode": "mixed"}),
    ),
    (
        "recording goes to its control",
        SETUP,
        {"type": "recording", "active": True},
        *forward("recording", {"type": "recording", "active": True}),
    ),
    (
        "the floor goes to the presenter",
        SETUP,
        {"type": "floor", "holder": "ben"},
        *forward("presenter", {"type": "floor", "holder": "ben"}),
    ),
    (
        "a queue place goes to the presenter",
        SETUP,
        {"type": "floor_queued", "position": 2},
        *forward("presenter", {"type": "floor_queued", "position": 2}),
    ),
    (
        "slides go to the presenter",
        SETUP,
        {"type": "slides", "page": 3},
        *forward("presenter", {"type": "slides", "page": 3}),
    ),
    (
        "hands go to the lecture",
        SETUP,
        {"type": "hands", "hands": []},
        *forward("lecture", {"type": "hands", "hands": []}),
    ),
    (
        "anything else goes to the lecture",
        SETUP,
        {"type": "pong", "id": "c3"},
        *forward("lecture", {"type": "pong", "id": "c3"}),
    ),
    (
        "a type named like an object property still goes to the lecture",
        SETUP,
        {"type": "constructor"},
        *forward("lecture", {"type": "constructor"}),
    ),
]


@pytest.fixture
async def static_url() -> AsyncIterator[str]:
    """A loopback HTTP server with the client's files under /static/ and a blank page at /."""

    async def blank(_: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>t</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", blank)
    app.router.add_static("/static/", WEB_ROOT)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def test_reducer_table(static_url: str) -> None:
    async with Chromium() as browser:
        page = await browser.open(static_url)
        await page.wait_for("document.readyState === 'complete'", timeout=10)
        assert await page.evaluate(HARNESS) is True
        failures = []
        for name, setup, message, changed, effects in CASES:
            case = json.dumps({"setup": setup, "message": message})
            result = await page.evaluate(f"window.reduceCase({case})")
            if result["after"] != result["before"]:
                failures.append(f"{name}: the state passed in was changed")
            expected = {**result["before"], **changed}
            if result["next"] != expected:
                failures.append(f"{name}: state {result['next']} != {expected}")
            if result["effects"] != effects:
                failures.append(f"{name}: effects {result['effects']} != {effects}")
    assert failures == [], "\n".join(failures)


async def test_participant_view_combines_published_and_received(static_url: str) -> None:
    muted_cam = {**BEN_CAM, "muted": True}
    cai_joined = JOINED["participants"][1]
    joined = {**JOINED, "participants": [{**BEN, "tracks": [BEN_MIC, muted_cam]}, cai_joined]}
    setup = {"joined": joined, "received": RECEIVED[:1], "activeSpeaker": "ben"}
    async with Chromium() as browser:
        page = await browser.open(static_url)
        await page.wait_for("document.readyState === 'complete'", timeout=10)
        assert await page.evaluate(HARNESS) is True
        ben = await page.evaluate(
            f"window.viewOf({json.dumps({'setup': setup, 'participantId': 'ben'})})"
        )
        cai = await page.evaluate(
            f"window.viewOf({json.dumps({'setup': setup, 'participantId': 'cai'})})"
        )
    assert ben == {
        "id": "ben",
        "name": "Ben",
        "role": "participant",
        "speaking": True,
        "reconnecting": False,
        "link": None,
        "hasMic": True,
        "hasCam": True,  # published, though not received (it is muted)
        "micMuted": False,
        "camMuted": True,
        "micTrack": "<t-ben-mic>",
        "camTrack": None,
    }
    # Cai publishes nothing; content is never a tile's picture.
    assert cai["hasMic"] is False and cai["hasCam"] is False
    assert cai["speaking"] is False and cai["camTrack"] is None
