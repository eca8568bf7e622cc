"""A short soak (``benchmarks/soak.py``) that fails when what the server holds keeps growing.

Cycles of joins and leaves, publishing, slides from uploaded documents, courseware uploads and
WHEP viewers run against the real server for ~150 s; at every cycle boundary (everyone gone)
the tool reads each process's memory, descriptors, threads and asyncio tasks and the SQLite
files. The first two cycles are warm-up; after them memory may not grow by more than 10 %
between the middle and last thirds of the boundaries, and counts must come back to where they
were. This is the only long test of the suite.

Recording is left out here: transcoding a recorded 1080p slide show raises the worker's memory
over its first five to ten recordings before it levels (~500 MiB on the 2-core VM), longer than
a 150 s run can wait out, so it cannot be told from a leak here. The 10-minute and one-hour
soaks (``benchmarks/README.md``) keep recording in.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


@pytest.mark.timeout(420)
async def test_churn_for_three_minutes_leaves_nothing_growing(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(TOOL),
        "--duration", "150", "--interval", "5", "--warmup", "2", "--tolerance", "10%",
        "--without", "recording", "--json", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 400)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = output.decode(errors="replace")
    result = json.loads(out.read_text())
    cycles = result["cycles"]
    assert len(cycles) >= 6, text[-4000:]
    # Every cycle did what it is for: a soak in which nothing happens proves nothing.
    for cycle in cycles:
        assert cycle["errors"] == [], (cycle["index"], cycle["errors"])
        counts = cycle["counts"]
        assert counts.get("joins") == 3 and counts.get("viewers") == 3, counts
        assert counts.get("pages", 0) >= 1 and counts.get("library uploads") == 1, counts
    judged = {j["series"]: j for j in result["judgements"]}
    for resource in ("rss_mib:0", "fds:0", "threads:0", "tasks:0", "procs:all"):
        assert resource in judged, (resource, sorted(judged))
    grew = [j for j in result["judgements"] if not j["passed"]]
    assert grew == [], "\n".join(text.splitlines()[-30:])
    assert process.returncode == 0, text[-4000:]
