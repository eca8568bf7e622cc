"""The contract between the front and the workers: room ids, internal routes, session ids."""

from __future__ import annotations

import re

import pytest

from mcu.app.cluster.routing import Route, RouteKind, route
from mcu.contracts.cluster import (
    ADMIT_PATH,
    MAX_ROOM_ID_CHARS,
    RELAY_PATH,
    RELAYS_PATH,
    ROOM_EXISTS_PATH,
    ROOM_HOME_WORKER,
    ROOM_ID_PATTERN,
    STAGE_PATH,
    VIEWERS_PATH,
    admit_path,
    internal_room,
    internal_worker,
    is_internal,
    mint_session_id,
    relay_path,
    relays_path,
    room_exists_path,
    session_worker,
    stage_path,
    viewers_path,
)


def test_session_worker() -> None:
    assert session_worker("3-abc", 4) == 3
    assert session_worker("4-abc", 4) is None
    assert session_worker("3-", 4) is None
    assert session_worker("-3-abc", 4) is None
    assert session_worker("99999-abc", 4) is None
    # Found by the front_routing fuzz target: str.isdigit() is true for superscripts, which
    # int() refuses, so DELETE /whep/room/%C2%B2-x raised in the front.
    assert session_worker("²-abc", 4) is None


@pytest.mark.parametrize("worker", [0, 1, 9, 10, 63, 999])
def test_a_minted_session_id_names_its_worker(worker: int) -> None:
    minted = {mint_session_id(worker) for _ in range(50)}
    assert len(minted) == 50  # random part: no two alike
    for session in minted:
        assert session_worker(session, worker + 1) == worker
        assert session_worker(session, worker) is None  # fewer workers: names none of them
        # It goes in a URL path segment as it is.
        assert re.fullmatch(r"[0-9]+-[A-Za-z0-9_-]{16}", session), session


@pytest.mark.parametrize("worker", [-1, 1000])
def test_no_session_id_for_a_worker_it_could_not_name(worker: int) -> None:
    with pytest.raises(ValueError):
        mint_session_id(worker)


@pytest.mark.parametrize(
    "session",
    [
        "",
        "-",
        "1",
        "1-",
        "-abc",
        "x-abc",
        "1x-abc",
        " 1-abc",
        "+1-abc",
        "1.0-abc",
        "٣-abc",
        "0001-a",
    ],
)
def test_malformed_session_ids_name_no_worker(session: str) -> None:
    assert session_worker(session, 64) is None


def test_room_id_pattern_and_length_agree() -> None:
    assert re.fullmatch(ROOM_ID_PATTERN, "a" * MAX_ROOM_ID_CHARS)
    assert not re.fullmatch(ROOM_ID_PATTERN, "a" * (MAX_ROOM_ID_CHARS + 1))
    assert not re.fullmatch(ROOM_ID_PATTERN, "")
    assert not re.fullmatch(ROOM_ID_PATTERN, "ward/7")


@pytest.mark.parametrize(
    ("built", "template"),
    [
        (room_exists_path("ward-7"), ROOM_EXISTS_PATH),
        (relays_path("ward-7"), RELAYS_PATH),
        (relay_path("ward-7", 3), RELAY_PATH),
        (viewers_path("ward-7"), VIEWERS_PATH),
        (admit_path("ward-7"), ADMIT_PATH),
        (stage_path("ward-7"), STAGE_PATH),
    ],
)
def test_internal_paths_fill_their_templates_and_are_never_routed(
    built: str, template: str
) -> None:
    assert built == template.format(room="ward-7", worker=3)
    for method in ("GET", "POST", "DELETE"):
        assert route(method, built, workers=4) == Route(RouteKind.NOT_FOUND)


def test_a_room_id_is_one_path_segment() -> None:
    # Ids from a WebSocket join are not validated yet when the front probes for them.
    assert room_exists_path("a/b?c#d%") == "/internal/rooms/a%2Fb%3Fc%23d%25"
    assert relay_path("a b", 0) == "/internal/rooms/a%20b/relays/0"


def test_another_nodes_call_names_a_worker_or_the_rooms_home() -> None:
    assert is_internal("/internal") and is_internal("/internal/rooms/x/relays")
    assert not is_internal("/internals") and not is_internal("/whep/internal")
    assert internal_room("/internal/rooms/ward-1/relays") == "ward-1"
    assert internal_room("/internal/rooms/ward-1") == "ward-1"
    assert internal_room("/internal/other/ward-1") is None
    assert internal_room("/internal/rooms/" + "x" * 65) is None
    assert internal_worker(None, 2) == internal_worker("home", 2) == ROOM_HOME_WORKER
    assert [internal_worker(v, 2) for v in ("0", "1", "2", "-1", "²", "0001", "x")] == [
        0, 1, None, None, None, None, None,
    ]  # fmt: skip
