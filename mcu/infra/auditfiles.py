"""Where the audit trail lives on disk, and reading it back (blocking: run it in a thread).

``DATA_DIR/audit/worker-<i>/`` holds the chain worker ``i`` writes (a single-process server is
worker 0): one JSON-lines file per UTC day, ``YYYY-MM-DD.jsonl``, and ``anchor.json`` once old
days were pruned. Every line is one entry (:mod:`mcu.infra.auditchain`). The writer is
:mod:`mcu.infra.auditlog`; queries and verification read through here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final

from mcu.infra.auditchain import GENESIS, Anchor, ChainCheck, Problem

__all__ = [
    "ANCHOR_NAME",
    "AUDIT_DIRNAME",
    "ChainDir",
    "ChainReport",
    "chain_dirs",
    "last_line",
    "sync_dir",
    "verify_chain",
]

AUDIT_DIRNAME: Final = "audit"
"The audit trail's folder inside ``data_dir``."
ANCHOR_NAME: Final = "anchor.json"
"The file recording where a pruned chain now starts."
_CHAIN = re.compile(r"worker-(\d{1,3})")
_DAY = re.compile(r"(\d{4}-\d{2}-\d{2})\.jsonl")
_TAIL_BLOCK = 64 * 1024


@dataclass(frozen=True)
class ChainDir:
    """One worker's chain: its folder of day files."""

    path: Path
    "The folder, ``audit/worker-<i>``."
    worker: int
    "The worker that writes it."

    @classmethod
    def of(cls, audit_dir: Path, worker: int) -> ChainDir:
        """Worker ``worker``'s chain inside ``audit_dir``."""
        return cls(audit_dir / f"worker-{worker}", worker)

    def days(self) -> list[tuple[date, Path]]:
        """The day files, oldest first."""
        found: list[tuple[date, Path]] = []
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        for name in names:
            match = _DAY.fullmatch(name)
            if match is None:
                continue
            try:
                found.append((date.fromisoformat(match.group(1)), self.path / name))
            except ValueError:
                continue
        return sorted(found)

    def day_file(self, day: date) -> Path:
        """The file of ``day``'s entries."""
        return self.path / f"{day.isoformat()}.jsonl"

    def anchor(self) -> Anchor:
        """Where the chain starts (nothing pruned: the genesis); ValueError if unreadable."""
        try:
            text = (self.path / ANCHOR_NAME).read_text(encoding="utf-8")
        except FileNotFoundError:
            return Anchor()
        data = json.loads(text)
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("seq"), int)
            or not isinstance(data.get("hash"), str)
        ):
            raise ValueError(f"{self.path / ANCHOR_NAME} is not an anchor")
        return Anchor(int(data["seq"]), str(data["hash"]))

    def write_anchor(self, anchor: Anchor) -> None:
        """Record ``anchor`` durably (written aside, synced, then renamed over the old one)."""
        target = self.path / ANCHOR_NAME
        temporary = self.path / (ANCHOR_NAME + ".new")
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump({"seq": anchor.seq, "hash": anchor.hash}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
        sync_dir(self.path)

    def lines(self) -> Iterator[tuple[str, str]]:
        """Every complete line, oldest first, with where it is (``worker-0/DAY.jsonl:LINE``)."""
        for _, path in self.days():
            label = f"{self.path.name}/{path.name}"
            try:
                file = open(path, encoding="utf-8", errors="replace", newline="\n")
            except FileNotFoundError:  # pruned meanwhile
                continue
            with file:
                for number, line in enumerate(file, start=1):
                    if line.endswith("\n"):
                        yield f"{label}:{number}", line[:-1]


def chain_dirs(audit_dir: Path) -> list[ChainDir]:
    """Every worker's chain under ``audit_dir``, by worker index."""
    try:
        names = os.listdir(audit_dir)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        match = _CHAIN.fullmatch(name)
        if match is not None and (audit_dir / name).is_dir():
            found.append(ChainDir(audit_dir / name, int(match.group(1))))
    return sorted(found, key=lambda chain: chain.worker)


def last_line(path: Path) -> tuple[str | None, int]:
    """The last complete line of ``path`` (None if it has none) and the length of the file up
    to the end of that line: a crash mid-write can leave a partial line after it."""
    with open(path, "rb") as file:
        position = file.seek(0, os.SEEK_END)
        tail = b""  # the file from ``position`` to its end
        while position > 0:
            start = max(0, position - _TAIL_BLOCK)
            file.seek(start)
            tail = file.read(position - start) + tail
            position = start
            end = tail.rfind(b"\n")
            if end < 0:
                continue
            begin = tail.rfind(b"\n", 0, end)
            if begin >= 0 or position == 0:
                return tail[begin + 1 : end].decode("utf-8", "replace"), position + end + 1
    return None, 0


def sync_dir(path: Path) -> None:
    """Make a rename, new or removed file in ``path`` durable."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class ChainReport:
    """The outcome of checking one chain."""

    chain: ChainDir
    "The chain checked."
    entries: int
    "Entries that fitted."
    head: str
    "The hash of the last entry that fitted (the anchor's, or :data:`GENESIS`, if none)."
    problem: Problem | None
    "The first entry that did not fit; None if the whole chain is intact."


def verify_chain(chain: ChainDir) -> ChainReport:
    """Check every entry of ``chain`` from its anchor. When an anchor exists, the chain must
    also still hold the ``audit.pruned`` entry that recorded it (else the anchor was forged)."""
    try:
        anchor = chain.anchor()
    except (OSError, ValueError) as exc:
        unreadable = Problem(f"{chain.path.name}/{ANCHOR_NAME}", None, f"unreadable: {exc}")
        return ChainReport(chain, 0, GENESIS, unreadable)
    check = ChainCheck(anchor)
    anchor_recorded = anchor.seq == 0
    for where, line in chain.lines():
        if check.feed(where, line) is not None:
            break
        if not anchor_recorded and '"audit.pruned"' in line:
            details = json.loads(line).get("details", {})
            anchor_recorded = (
                details.get("anchor_seq") == anchor.seq
                and details.get("anchor_hash") == anchor.hash
            )
    problem = check.problem
    if problem is None and not anchor_recorded:
        problem = Problem(
            f"{chain.path.name}/{ANCHOR_NAME}",
            anchor.seq,
            "no audit.pruned entry records this anchor (it, or the entries after it, changed)",
        )
    return ChainReport(chain, check.entries, check.hash, problem)
