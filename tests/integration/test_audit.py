"""The audit trail of a real server process: a scripted session leaves exactly the expected
entries, holds no secret, is searched and exported over HTTP, and an entry altered on disk is
named by ``mcu audit verify``."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.room_client import RoomClient, joined_client
from tests.support.server import ServerProcess

PASSWORD = "correct horse battery"
WRONG = "wrong horse battery"
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def _entries_on_disk(data_dir: Path) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for path in sorted((data_dir / "audit" / "worker-0").glob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    return lines


async def _written(data_dir: Path, last_action: str, count: int) -> list[dict[str, Any]]:
    """The entries on disk once ``count`` entries ending with ``last_action`` are written
    (batches are synced about once a second)."""
    entries: list[dict[str, Any]] = []
    for _ in range(100):  # 10 s at most
        entries = _entries_on_disk(data_dir)
        if len(entries) >= count and entries[count - 1]["action"] == last_action:
            return entries
        await asyncio.sleep(0.1)
    raise AssertionError(f"not written: {[e['action'] for e in entries]}")


async def _verify(data_dir: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcu", "audit", "verify", "--data-dir", str(data_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_a_scripted_session_is_recorded_exactly_and_verifiably(
    server: ServerProcess,
) -> None:
    base, data_dir = server.base_url, server.data_dir
    await server.create_room("cardio-1", PASSWORD, title="Cardiology consult")
    chair_link = await server.invite("cardio-1", role="chair")
    invite_token = chair_link.split("invite=", 1)[1]
    chair = await joined_client(server, "Dr Chen", invite=invite_token)
    doctor = RoomClient(server.ws_url, "Dr Wang")
    await doctor.connect()
    try:
        refused = await doctor.join("cardio-1", password=WRONG)
        assert refused["code"] == "wrong_password", refused
        joined = await doctor.join("cardio-1", password=PASSWORD)
        assert joined["type"] == "joined", joined
        doctor_id = doctor.participant_id
        await chair.send({"type": "chair", "action": "remove", "participant_id": doctor_id})
        await doctor.wait_for(lambda m: m["type"] == "_socket_closed")
    finally:
        await doctor.close()
        await chair.close()
    await _written(data_dir, "room.left", 8)  # the chair's own leave

    async with server.http.post(
        base + "/api/library", params={"title": "Slides"}, data=PDF
    ) as reply:
        assert reply.status == 201, await reply.text()
        item = (await reply.json())["id"]
    status, body = await server.download(f"/library/{item}/play")
    assert (status, body) == (200, PDF)
    async with server.http.post(base + f"/api/library/{item}/share", json={}) as reply:
        assert reply.status == 201
        share_token = (await reply.json())["token"]
    async with aiohttp.ClientSession() as anyone:  # no admin token: the share link's holder
        async with anyone.get(base + f"/library/{item}/play?token={share_token}") as reply:
            assert reply.status == 200 and await reply.read() == PDF
    async with server.http.delete(base + f"/api/library/{item}") as reply:
        assert reply.status == 204

    entries = await _written(data_dir, "library.deleted", 13)
    seen = [(e["action"], e["actor"], e["room"] or e["item"]) for e in entries]
    assert (
        seen
        == [
            ("room.created", "admin", "cardio-1"),
            ("invite.created", "admin", "cardio-1"),
            ("room.joined", "Dr Chen", "cardio-1"),
            ("admission.refused", "Dr Wang", "cardio-1"),
            ("room.joined", "Dr Wang", "cardio-1"),
            ("chair.remove", "Dr Chen", "cardio-1"),
            ("room.left", "Dr Wang", "cardio-1"),
            ("room.left", "Dr Chen", "cardio-1"),
            ("library.uploaded", "admin", item),
            ("library.played", "admin", item),
            ("library.shared", "admin", item),
            ("library.played", "share link", item),
            ("library.deleted", "admin", item),
        ][: len(seen)]
    )
    assert len(seen) == 13, seen
    assert [e["seq"] for e in entries] == list(range(1, 14))
    assert all(e["address"] == "127.0.0.1" for e in entries[2:8])
    assert entries[2]["details"] | {"participant": "-"} == {
        "participant": "-",
        "role": "chair",
        "via": "websocket",
        "credential": "invite",
    }
    assert entries[3]["details"] == {
        "entry": "join",
        "code": "wrong_password",
        "credential": "password",
    }
    assert entries[5]["details"]["target"] == doctor_id
    assert entries[6]["details"]["reason"] == "removed"
    assert entries[10]["details"]["link"] == entries[11]["details"]["link"]

    # The search: filters and the CSV export (the search itself is recorded after).
    found = await server.get_json(f"/api/audit?item={item}&action=library.played")
    assert [e["actor"] for e in found["entries"]] == ["admin", "share link"]
    found = await server.get_json("/api/audit?actor=Dr%20Wang&from=2000-01-01")
    assert [e["action"] for e in found["entries"]] == [
        "admission.refused",
        "room.joined",
        "room.left",
    ]
    async with server.http.get(base + "/api/audit?room=cardio-1&format=csv") as reply:
        assert reply.status == 200 and reply.content_type == "text/csv"
        rows = list(csv.DictReader(io.StringIO(await reply.text())))
    assert [row["action"] for row in rows][:3] == ["room.created", "invite.created", "room.joined"]
    assert len(rows) == 8 and json.loads(rows[3]["details"])["code"] == "wrong_password"

    assert await server.stop() == 0
    secrets = [PASSWORD, WRONG, server.admin_token, invite_token, share_token]
    for path in (data_dir / "audit").rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            for secret in secrets:
                assert secret not in text, (path, secret)

    status, output = await _verify(data_dir)
    assert status == 0 and "worker-0: ok, " in output, output
    # Someone rewrites who watched the recording.
    day_file = next((data_dir / "audit" / "worker-0").glob("*.jsonl"))
    lines = day_file.read_text().splitlines(keepends=True)
    assert '"share link"' in lines[11]
    lines[11] = lines[11].replace('"share link"', '"admin"')
    day_file.write_text("".join(lines))
    status, output = await _verify(data_dir)
    assert status == 1, output
    assert f"{day_file.name}:12: entry 12: its hash does not match" in output, output


async def test_bad_filters_are_refused_naming_the_field(server: ServerProcess) -> None:
    cases = {
        "limit=0": "limit",
        "limit=5000": "limit",
        "limit=99999999999999999999999": "limit",
        "offset=-1": "offset",
        "from=yesterday": "from",
        "to=2024-03-01T09:00:00": "to",
        "format=xml": "format",
        "action=DROP%20TABLE": "action",
        "colour=red": "colour",
        "room=a&room=b": "repeated",
    }
    for query, field in cases.items():
        async with server.http.get(server.base_url + "/api/audit?" + query) as reply:
            body = await reply.json()
            assert reply.status == 400 and body["error"] == "bad_request", (query, body)
            assert field in body["message"], (query, body)
    async with aiohttp.ClientSession() as anyone:
        async with anyone.get(server.base_url + "/api/audit") as reply:
            assert reply.status == 401
    found = await server.get_json("/api/audit?action=admin.refused")
    assert [e["details"]["path"] for e in found["entries"]] == ["/api/audit"]


async def test_workers_write_their_own_chains_and_the_search_merges_them(
    cluster: ServerProcess,
) -> None:
    for room in ("cardio-1", "neuro-2"):
        await cluster.create_room(room, PASSWORD)
        await cluster.invite(room)  # answered by the room's home worker
    entries: list[dict[str, Any]] = []
    for _ in range(50):  # each worker syncs its chain about once a second
        found = await cluster.get_json("/api/audit?action=invite.created")
        entries = found["entries"]
        if len(entries) == 2:
            break
        await asyncio.sleep(0.2)
    assert sorted(e["room"] for e in entries) == ["cardio-1", "neuro-2"]
    assert sorted(e["worker"] for e in entries) == [0, 1]
    assert entries[0]["time"] <= entries[1]["time"]
    chains = sorted(p.name for p in (cluster.data_dir / "audit").iterdir() if p.is_dir())
    assert chains == ["worker-0", "worker-1"]
    status, output = await _verify(cluster.data_dir)
    assert status == 0 and "worker-0: ok" in output and "worker-1: ok" in output, output
