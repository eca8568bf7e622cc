"""What a server holds, read from outside: memory, descriptors, threads, tasks, database files.

Per server process (the front and each worker, or the single process) from ``/proc/<pid>``:
resident memory, open file descriptors and threads; asyncio tasks from the process's own
``mcu_asyncio_tasks`` gauge in ``/metrics`` (labelled by ``worker`` behind a front). For the
whole tree, the number of processes (the composite renderer and its helpers included), and the
SQLite files in the data directory, each database and its write-ahead log apart.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path

_GAUGE = re.compile(r"^(mcu_asyncio_tasks)(?:\{([^}]*)\})? (\S+)", re.M)
_WORKER_LABEL = re.compile(r'worker="([^"]*)"')

RESOURCES = ("rss_mib", "fds", "threads", "tasks")
"Per-process resources, in the order the tables print them."


@dataclass
class Sample:
    """Every resource at one moment."""

    t: float
    "Seconds since the run started."
    cycle: int
    "The cycle running (or just finished, at a boundary); 0 before the first."
    boundary: bool
    "Taken at the end of a cycle, once everyone had left: the same activity level every time."
    values: dict[str, float] = field(default_factory=dict)
    "``resource:process`` (``rss_mib:front``, ``tasks:0``), ``procs:all``, ``sqlite_kib:FILE``."


def status_fields(pid: int) -> dict[str, int]:
    """``VmRSS`` (KiB) and ``Threads`` of process ``pid`` (empty when it is gone)."""
    found = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "Threads"):
                with contextlib.suppress(ValueError, IndexError):
                    found[key] = int(rest.split()[0])
    return found


def open_fds(pid: int) -> int | None:
    """How many file descriptors process ``pid`` holds (None when it is gone)."""
    try:
        return len(list(Path(f"/proc/{pid}/fd").iterdir()))
    except OSError:
        return None


def descendants(root: int) -> set[int]:
    """Every living descendant of process ``root`` (scanning ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            # The command name is in parentheses and may hold spaces: the ppid follows its end.
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    for _ in range(100_000):  # bounded: a process table is finite
        if not todo:
            break
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def tasks_by_worker(exposition: str) -> dict[str, float]:
    """``mcu_asyncio_tasks`` per process label (``0`` for the unlabelled single process)."""
    found = {}
    for _, labels, value in _GAUGE.findall(exposition):
        match = _WORKER_LABEL.search(labels or "")
        with contextlib.suppress(ValueError):
            found[match.group(1) if match else "0"] = float(value)
    return found


def sqlite_sizes(data_dir: Path) -> dict[str, float]:
    """KiB of every SQLite database in ``data_dir`` (top level) and of its write-ahead log."""
    sizes = {}
    for path in sorted(data_dir.glob("*.sqlite3")):
        for file in (path, path.with_name(path.name + "-wal")):
            with contextlib.suppress(OSError):
                sizes[f"sqlite_kib:{file.name}"] = file.stat().st_size / 1024
    return sizes


def read_processes(processes: dict[str, int], exposition: str | None) -> dict[str, float]:
    """Per-process resources of ``{label: pid}``; tasks only from a scrape that answered."""
    values: dict[str, float] = {}
    tasks = tasks_by_worker(exposition) if exposition is not None else {}
    for label, pid in processes.items():
        status = status_fields(pid)
        if "VmRSS" in status:
            values[f"rss_mib:{label}"] = status["VmRSS"] / 1024
        if "Threads" in status:
            values[f"threads:{label}"] = status["Threads"]
        fds = open_fds(pid)
        if fds is not None:
            values[f"fds:{label}"] = fds
        if label in tasks:
            values[f"tasks:{label}"] = tasks[label]
    return values
