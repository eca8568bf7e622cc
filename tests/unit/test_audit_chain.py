"""The audit trail's hash chain, its writer and its search, on files in a temporary folder."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mcu.infra.auditchain import GENESIS, Anchor, ChainCheck, canonical, link, seal
from mcu.infra.auditfiles import ANCHOR_NAME, ChainDir, chain_dirs, verify_chain
from mcu.infra.auditlog import AuditError, AuditLog
from mcu.infra.auditquery import AuditQuery, search, to_csv

DAY = 86_400.0
START = datetime(2024, 3, 1, 9, 0, tzinfo=UTC).timestamp()


class Clock:
    """Time as the test sets it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _chain(count: int) -> list[str]:
    lines, previous = [], GENESIS
    for seq in range(1, count + 1):
        entry = seal(previous, {"seq": seq, "action": "room.joined", "actor": f"Dr {seq}"})
        previous = entry["hash"]
        lines.append(canonical(entry).decode())
    return lines


def _first_problem(lines: list[str], anchor: Anchor | None = None) -> str | None:
    check = ChainCheck(anchor or Anchor())
    for number, line in enumerate(lines, start=1):
        problem = check.feed(f"line {number}", line)
        if problem is not None:
            return str(problem)
    return None


def test_hash_is_sha256_over_the_previous_hash_and_the_canonical_json() -> None:
    import hashlib

    fields = {"seq": 1, "actor": "王医生", "action": "room.joined"}
    expected = hashlib.sha256(
        GENESIS.encode() + '{"action":"room.joined","actor":"王医生","seq":1}'.encode()
    ).hexdigest()
    assert link(GENESIS, fields) == expected
    assert seal(GENESIS, fields)["hash"] == expected


def test_an_intact_chain_passes() -> None:
    lines = _chain(5)
    assert _first_problem(lines) is None
    check = ChainCheck()
    for line in lines:
        check.feed("x", line)
    assert (check.entries, check.seq, check.hash) == (5, 5, json.loads(lines[-1])["hash"])


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("alter", "line 3: entry 3: its hash does not match"),
        ("remove", "line 3: entry 4: follows entry 2"),
        ("swap", "line 3: entry 4: follows entry 2"),
        ("cut", "line 3: an entry: not a JSON object"),
        ("rehash", "line 4: entry 4: its hash does not match"),
    ],
)
def test_the_first_damaged_entry_is_named(damage: str, named: str) -> None:
    lines = _chain(6)
    third = json.loads(lines[2])
    if damage == "alter":
        lines[2] = lines[2].replace("Dr 3", "Dr 9")
    elif damage == "remove":
        del lines[2]
    elif damage == "swap":
        lines[2], lines[3] = lines[3], lines[2]
    elif damage == "cut":
        lines[2] = lines[2][:20]
    else:  # altered and its own hash recomputed: the next entry no longer follows
        third["actor"] = "Dr 9"
        del third["hash"]
        lines[2] = canonical(seal(json.loads(lines[1])["hash"], third)).decode()
    problem = _first_problem(lines)
    assert problem is not None and problem.startswith(named), problem


def test_a_chain_checked_from_its_anchor() -> None:
    lines = _chain(6)
    anchor = Anchor(3, json.loads(lines[2])["hash"])
    assert _first_problem(lines[3:], anchor) is None
    assert "follows entry 3" in (_first_problem(lines[4:], anchor) or "")


async def test_the_log_writes_one_chain_across_restarts(tmp_path: Path) -> None:
    clock = Clock(START)
    log = AuditLog(tmp_path, 0, 365, clock=clock)
    await log.open()
    log.record("room.joined", actor="Dr Li", room="cardio-1", address="10.0.0.7")
    clock.now += DAY  # a new day: a new file, the same chain
    log.record("room.left", actor="Dr Li", room="cardio-1", details={"reason": "left"})
    await log.close()
    # A crash mid-write leaves half a line; the restart cuts it off and goes on.
    day_two = ChainDir.of(tmp_path, 0).day_file(datetime.fromtimestamp(clock.now, UTC).date())
    with open(day_two, "a") as file:  # noqa: ASYNC230 - a test's one line
        file.write('{"seq": 3, "act')
    log = AuditLog(tmp_path, 0, 365, clock=clock)
    await log.open()
    clock.now -= 60  # the wall clock stepped back: entries still never go back in time
    log.record("library.played", actor="admin", item="abc")
    await log.close()

    [chain] = chain_dirs(tmp_path)
    assert [path.name for _, path in chain.days()] == ["2024-03-01.jsonl", "2024-03-02.jsonl"]
    report = verify_chain(chain)
    assert report.problem is None and report.entries == 3
    entries = search(tmp_path, AuditQuery())
    assert [(e["seq"], e["action"]) for e in entries] == [
        (1, "room.joined"),
        (2, "room.left"),
        (3, "library.played"),
    ]
    assert entries[2]["time"] == entries[1]["time"]
    assert entries[0]["address"] == "10.0.0.7" and entries[1]["details"] == {"reason": "left"}


async def test_one_writer_per_chain(tmp_path: Path) -> None:
    first = AuditLog(tmp_path, 0, 365)
    await first.open()
    try:
        with pytest.raises(AuditError, match="another process"):
            await AuditLog(tmp_path, 0, 365).open()
        other = AuditLog(tmp_path, 1, 365)  # another worker's chain is its own
        await other.open()
        await other.close()
    finally:
        await first.close()


async def test_pruning_keeps_the_chain_verifiable(tmp_path: Path) -> None:
    clock = Clock(START)
    log = AuditLog(tmp_path, 0, 30, clock=clock)
    await log.open()
    for day in range(3):
        log.record("room.joined", actor=f"Dr {day}", room="r")
        await log.flush()
        clock.now += DAY
    await log.close()
    kept_hash = search(tmp_path, AuditQuery())[1]["hash"]

    clock.now = START + 32 * DAY  # days 0 and 1 are now past 30 days' retention
    log = AuditLog(tmp_path, 0, 30, clock=clock)
    await log.open()
    await log.close()
    chain = ChainDir.of(tmp_path, 0)
    assert [path.name for _, path in chain.days()] == ["2024-03-03.jsonl", "2024-04-02.jsonl"]
    assert chain.anchor() == Anchor(2, kept_hash)
    entries = search(tmp_path, AuditQuery())
    assert [e["action"] for e in entries] == ["room.joined", "audit.pruned"]
    assert entries[1]["details"]["anchor_seq"] == 2
    report = verify_chain(chain)
    assert report.problem is None and report.entries == 2

    # An anchor moved forward (to hide entries removed by hand) no longer matches the record.
    (chain.path / ANCHOR_NAME).write_text(json.dumps({"seq": 3, "hash": entries[0]["hash"]}))
    (chain.path / "2024-03-03.jsonl").unlink()
    problem = verify_chain(chain).problem
    assert problem is not None and "no audit.pruned entry records this anchor" in str(problem)


async def test_search_filters_and_merges_workers_by_time(tmp_path: Path) -> None:
    clock = Clock(START)
    logs = [AuditLog(tmp_path, worker, 365, clock=clock) for worker in (0, 1)]
    for log in logs:
        await log.open()
    plan = [
        (0, "room.joined", "Dr Li", "cardio-1", None),
        (1, "room.joined", "Dr Wang", "cardio-2", None),
        (1, "library.played", "admin", None, "item-1"),
        (0, "room.left", "Dr Li", "cardio-1", None),
        (0, "library.deleted", "admin", None, "item-1"),
    ]
    for worker, action, actor, room, item in plan:
        clock.now += 10
        logs[worker].record(action, actor=actor, room=room, item=item)
    for log in logs:
        await log.close()

    def actions(**filters: object) -> list[str]:
        return [
            e["action"] + "@" + str(e["worker"]) for e in search(tmp_path, AuditQuery(**filters))
        ]  # type: ignore[arg-type]

    assert actions() == [
        "room.joined@0",
        "room.joined@1",
        "library.played@1",
        "room.left@0",
        "library.deleted@0",
    ]
    assert actions(actor="Dr Li") == ["room.joined@0", "room.left@0"]
    assert actions(room="cardio-2") == ["room.joined@1"]
    assert actions(item="item-1") == ["library.played@1", "library.deleted@0"]
    assert actions(action="library.") == ["library.played@1", "library.deleted@0"]
    assert actions(action="room.left") == ["room.left@0"]
    assert actions(limit=2, offset=1) == ["room.joined@1", "library.played@1"]
    third = search(tmp_path, AuditQuery())[2]["time"]
    assert actions(since=third) == ["library.played@1", "room.left@0", "library.deleted@0"]
    assert actions(until=third) == ["room.joined@0", "room.joined@1"]


def test_csv_keeps_formulas_as_text() -> None:
    entry = {"time": "t", "action": "room.joined", "actor": "=HYPERLINK(1)", "details": {"a": 1}}
    rows = to_csv([entry]).splitlines()
    assert rows[0] == "time,action,actor,room,item,address,details,worker,seq,hash"
    assert rows[1] == 't,room.joined,\'=HYPERLINK(1),,,,"{""a"": 1}",,,'
