"""The operators' load-test tool (``benchmarks/loadtest.py``) against the real server.

A small bounded scenario: 1 room, 1 publisher (video + audio), 3 subscribers of which 1 decodes,
6 s of steady state. Thresholds are generous and nothing here asserts on time.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.support.server import ServerProcess

TOOL = Path(__file__).resolve().parents[2] / "benchmarks" / "loadtest.py"


async def test_loadtest_small_room(server: ServerProcess, tmp_path: Path) -> None:
    out_json, out_html = tmp_path / "out.json", tmp_path / "out.html"
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(TOOL),
        "--url", server.base_url, "--rooms", "1", "--publishers", "1", "--subscribers", "3",
        "--decode-sample", "1", "--speakers", "1", "--duration", "6", "--join-rate", "10",
        "--max-loss", "5%", "--max-join-p95", "30s", "--quiet",
        "--json", str(out_json), "--html", str(out_html),
        env=os.environ | {"MCU_ADMIN_TOKEN": server.admin_token},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 90)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-4000:]

    result = json.loads(out_json.read_text())
    assert result["errors"] == [], result["errors"]
    assert result["summary"]["errors"] == 0
    tracks = result["tracks"]
    assert sorted(t["kind"] for t in tracks) == ["audio", "video"]
    assert all(t["sent_packets"] > 0 for t in tracks)
    subscribers = result["subscribers"]
    assert len(subscribers) == 3
    track_ids = {t["track_id"] for t in tracks}
    for subscriber in subscribers:
        assert set(subscriber["tracks"]) == track_ids, subscriber
        assert all(t["packets"] > 0 for t in subscriber["tracks"].values()), subscriber
        assert subscriber["loss"] < 0.05, subscriber
    decoding = [s for s in subscribers if s["decodes"]]
    assert len(decoding) == 1
    assert set(decoding[0]["decoded_frames"]) == track_ids
    assert all(n > 0 for n in decoding[0]["decoded_frames"].values())
    assert result["summary"]["loss"]["max"] < 0.05
    assert result["verdict"]["passed"]

    page = out_html.read_text()
    assert "<svg" in page and "</html>" in page
    assert "http://" not in page.replace(server.base_url, "").replace(
        "http://www.w3.org/2000/svg", ""
    )  # self-contained: no external assets
