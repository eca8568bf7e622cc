"""The lecture broadcast benchmark (``benchmarks/bench_broadcast.py``), in a tiny bounded run.

The tool starts its own server (one process), creates a lecture room, publishes one WHIP lecturer
and joins 3 WHEP viewers; 4 s of steady state. Thresholds are generous and nothing here asserts
on time or CPU.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_broadcast.py"


async def test_three_viewers_receive_the_lecture(tmp_path: Path) -> None:
    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = cores[0], cores[-1]  # the same core on a one-core box
    out = tmp_path / "broadcast.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(TOOL),
        "--viewers", "3", "--seconds", "4", "--join-rate", "10", "--join-timeout", "15",
        "--max-loss", "5%", "--server-cores", str(server_core),
        "--client-cores", str(client_core), "--timeout", "50", "--json", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 58)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-4000:]

    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert run["passed"], run["problems"]
    assert (run["viewers"], run["joined"], run["failed"]) == (3, 3, 0)
    rows = run["viewer_rows"]
    assert len(rows) == 3
    for row in rows:
        assert row["audio_packets"] > 0 and row["video_packets"] > 0, row
        assert row["loss"] <= 0.05, row
        assert row["bitrate_bps"] > 0, row
    assert run["server_cpu_percent"], "the server's CPU was read from /proc"
    per_kind = run["kind_bitrate_bps"]
    assert per_kind["video"]["min"] > per_kind["audio"]["min"] > 0, per_kind
    assert per_kind["video"]["without"] == per_kind["audio"]["without"] == 0
    counters = run["server_counters"]
    assert counters["mcu_rtp_packets_received_total"] > 0, counters
    assert counters["mcu_video_keyframes_received_total"] > 0, counters
    assert "video per viewer: min" in text
    assert "PASS" in text
