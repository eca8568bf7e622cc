"""Checking recorded files with ffprobe/ffmpeg (Debian's ffmpeg package)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def ffprobe(path: Path) -> dict[str, Any]:
    """Format duration and per-stream codec, start time, duration and size, as JSON."""
    out = subprocess.run(
        [
            "ffprobe", "-v", "error", "-show_entries",
            "format=duration:stream=codec_type,codec_name,start_time,duration,width,height",
            "-of", "json", str(path),
        ],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def decodes_cleanly(path: Path) -> bool:
    """Whether ffmpeg decodes the whole file with no error at all."""
    run = subprocess.run(
        ["ffmpeg", "-v", "error", "-xerror", "-i", str(path), "-f", "null", "-"],
        capture_output=True, timeout=120,
    )  # fmt: skip
    return run.returncode == 0 and not run.stderr
