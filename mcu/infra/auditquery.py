"""Searching the audit trail: every worker's chain read, filtered and merged by time, and the
result written as JSON lines or CSV. Blocking (it reads files): run it in a thread."""

from __future__ import annotations

import csv
import heapq
import io
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

from mcu.infra.auditfiles import ChainDir, chain_dirs

__all__ = ["CSV_COLUMNS", "AuditQuery", "search", "to_csv", "to_jsonl"]

CSV_COLUMNS: Final = (
    "time",
    "action",
    "actor",
    "room",
    "item",
    "address",
    "details",
    "worker",
    "seq",
    "hash",
)
"The CSV export's columns, in order (``details`` as a JSON object)."
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditQuery:
    """Which entries to return; every filter given must match."""

    actor: str | None = None
    "Exactly this actor."
    room: str | None = None
    "Exactly this room id."
    item: str | None = None
    "Exactly this library item id."
    action: str | None = None
    "This action, or with a trailing ``.`` every action of that family (``library.``)."
    since: str | None = None
    "Entries at or after this time (an entry's ``time`` format)."
    until: str | None = None
    "Entries before this time."
    limit: int = 100
    "At most this many."
    offset: int = 0
    "After skipping this many matching entries (oldest first)."

    def matches(self, entry: dict[str, Any]) -> bool:
        """Whether ``entry`` passes every filter."""
        if self.actor is not None and entry.get("actor") != self.actor:
            return False
        if self.room is not None and entry.get("room") != self.room:
            return False
        if self.item is not None and entry.get("item") != self.item:
            return False
        if self.action is not None:
            action = entry.get("action")
            if not isinstance(action, str):
                return False
            if self.action.endswith("."):
                if not action.startswith(self.action):
                    return False
            elif action != self.action:
                return False
        moment = entry.get("time")
        if not isinstance(moment, str):
            return False
        if self.since is not None and moment < self.since:
            return False
        return self.until is None or moment < self.until


def search(audit_dir: Path, query: AuditQuery) -> list[dict[str, Any]]:
    """The entries of every chain under ``audit_dir`` that ``query`` selects, oldest first
    (equal times: by worker, then sequence)."""
    chains = [_matching(chain, query) for chain in chain_dirs(audit_dir)]
    merged = heapq.merge(*chains, key=lambda e: (e["time"], e["worker"], e["seq"]))
    return list(itertools.islice(merged, query.offset, query.offset + query.limit))


def _matching(chain: ChainDir, query: AuditQuery) -> Iterator[dict[str, Any]]:
    first = date.fromisoformat(query.since[:10]) if query.since else None
    last = date.fromisoformat(query.until[:10]) if query.until else None
    for day, path in chain.days():
        # A day's file holds only that UTC day's entries: skip whole days outside the range.
        if (first is not None and day < first) or (last is not None and day > last):
            continue
        try:
            file = open(path, encoding="utf-8", errors="replace")
        except FileNotFoundError:  # pruned meanwhile
            continue
        with file:
            for line in file:
                entry = _entry(line)
                if entry is not None and query.matches(entry):
                    yield entry


def _entry(line: str) -> dict[str, Any] | None:
    """An entry as the query can sort it; None for a line that is not one (a damaged line is
    ``mcu audit verify``'s to report, not the query's to fail on)."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("time"), str)
        or not isinstance(entry.get("worker"), int)
        or not isinstance(entry.get("seq"), int)
    ):
        return None
    return entry


def to_jsonl(entries: list[dict[str, Any]]) -> str:
    """One entry per line, as stored."""
    return "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    # A spreadsheet would run a cell starting like a formula (a participant may choose their
    # name): a leading apostrophe keeps it text.
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def to_csv(entries: list[dict[str, Any]]) -> str:
    """The entries as CSV with a header row of :data:`CSV_COLUMNS`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        writer.writerow([_cell(entry.get(column)) for column in CSV_COLUMNS])
    return out.getvalue()
