"""The front's routing table, the viewer balance and the worker's trusted client address."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from mcu.app.cluster.front import ViewerBalance
from mcu.app.cluster.routing import Route, RouteKind, room_of_join, route
from mcu.app.cluster.worker import forwarded_for_middleware
from mcu.app.config import load_config

HOME = RouteKind.HOME


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/whip/ward", Route(HOME, room="ward")),
        ("DELETE", "/whip/ward/abc", Route(HOME, room="ward")),
        ("POST", "/rooms/ward/documents", Route(HOME, room="ward")),
        ("GET", "/api/rooms/ward", Route(HOME, room="ward")),
        ("POST", "/api/rooms/ward/invites", Route(HOME, room="ward")),
        ("POST", "/api/rooms", Route(RouteKind.WORKER, worker=0)),
        ("GET", "/api/library", Route(RouteKind.WORKER, worker=0)),
        ("POST", "/whep/ward", Route(RouteKind.NEW_VIEWER, room="ward")),
        ("OPTIONS", "/whep/ward", Route(RouteKind.WORKER, worker=0)),
        ("DELETE", "/whep/ward/1-xyz", Route(RouteKind.WORKER, worker=1)),
        ("PATCH", "/whep/ward/0-xyz", Route(RouteKind.WORKER, worker=0)),
        ("OPTIONS", "/whep/ward/1-xyz", Route(RouteKind.WORKER, worker=1)),
        ("DELETE", "/whep/ward/2-xyz", Route(RouteKind.NOT_FOUND)),
        ("DELETE", "/whep/ward/xyz", Route(RouteKind.NOT_FOUND)),
        ("GET", "/internal/rooms/ward/stage", Route(RouteKind.NOT_FOUND)),
        ("GET", "/internal", Route(RouteKind.NOT_FOUND)),
        ("GET", "/", Route(RouteKind.WORKER, worker=0)),
        ("GET", "/r/ward", Route(RouteKind.WORKER, worker=0)),
        ("POST", "/r/ward", Route(RouteKind.WORKER, worker=0)),
        # The join page's look-ups: a bare room id (anyone may probe) claims no home.
        ("GET", "/rooms/ward", Route(RouteKind.WORKER, worker=0)),
        ("GET", "/rooms/ward/invite", Route(RouteKind.HOME, room="ward")),
        ("POST", "/whip/" + "x" * 65, Route(RouteKind.WORKER, worker=0)),
    ],
)
def test_route(method: str, path: str, expected: Route) -> None:
    assert route(method, path, workers=2) == expected


def test_a_session_naming_no_worker_is_not_found() -> None:
    # Found by the front_routing fuzz target: str.isdigit() is true for superscripts, which
    # int() refuses, so DELETE /whep/room/%C2%B2-x raised in the front.
    assert route("DELETE", "/whep/r/²-abc", workers=2) == Route(RouteKind.NOT_FOUND)


@pytest.mark.parametrize(
    ("frame", "room"),
    [
        ('{"type": "join", "room": "cardio-1", "name": "n"}', "cardio-1"),
        # A resume is a join too: it reaches the room's home, where the participant waits.
        ('{"type": "join", "room": "cardio-1", "resume": {"participant_id": "p1"}}', "cardio-1"),
        ('{"type": "ping"}', None),
        ('{"type": "join", "room": ""}', None),
        ("not json", None),
        # Found by the front_routing fuzz target: nesting past the recursion limit raised
        # RecursionError, and a lone surrogate could not be quoted into the existence probe.
        ("[" * 5_000, None),
        ('{"type": "join", "room": "\\ud800"}', None),
    ],
)
def test_room_of_join(frame: str, room: str | None) -> None:
    assert room_of_join(frame) == room


def test_viewer_balance_counts_routed_viewers_until_the_next_poll() -> None:
    balance = ViewerBalance(2)
    balance.update(0, 5)
    balance.update(1, 3)
    assert [balance.pick() for _ in range(4)] == [1, 1, 0, 1]
    balance.update(1, 9)  # the poll sees the routed viewers; the local count restarts
    assert balance.pick() == 0
    balance.update(0, None)  # down: no viewers while another worker answers
    assert balance.pick() == 1


async def test_forwarded_for_sets_the_client_address() -> None:
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.remote)
        return web.Response()

    forwarded = make_mocked_request("GET", "/", headers={"X-Forwarded-For": "1.2.3.4, 10.0.0.9"})
    await forwarded_for_middleware(forwarded, handler)
    plain = make_mocked_request("GET", "/")
    await forwarded_for_middleware(plain, handler)
    assert seen[0] == "10.0.0.9"
    assert seen[1] == plain.remote


def test_worker_settings() -> None:
    config = load_config(
        ["--workers", "3", "--worker-index", "2", "--rtc-port-min", "40000", "--rtc-port-max",
         "40010"],
        {"MCU_WORKER_INDEX": "1"},  # internal: never read from the environment
    )  # fmt: skip
    assert config.worker_index == 2
    assert [config.rtc_port_slice(i, 3) for i in range(3)] == [
        (40000, 40002),
        (40003, 40005),
        (40006, 40008),
    ]
    assert load_config([], {"MCU_WORKER_INDEX": "1"}).worker_index is None


def test_workers_resolve_to_the_usable_cores() -> None:
    assert load_config(["--workers", "3"], {}).resolved_workers() == 3
    assert load_config([], {"MCU_WORKERS": "0"}).resolved_workers() >= 1
