"""The audit trail's hash chain: how an entry is sealed to the one before it, and how a chain of
entries read back is checked. Pure: no I/O, no clock.

Each entry is a JSON object; its ``hash`` is SHA-256 over the previous entry's hash (hex, as
ASCII) followed by the canonical JSON of the entry without ``hash`` (keys sorted, no spaces,
UTF-8). Changing, removing or reordering any entry therefore breaks every hash after it, and
:class:`ChainCheck` names the first entry that no longer fits. docs/audit.md describes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "GENESIS",
    "Anchor",
    "ChainCheck",
    "Problem",
    "canonical",
    "link",
    "seal",
]

GENESIS: Final = "0" * 64
"The ``previous hash`` of a chain's first entry."

Fields = Mapping[str, Any]
"An entry's fields: JSON values (strings, integers, booleans, None, objects of those)."


@dataclass(frozen=True)
class Anchor:
    """Where a chain's surviving entries start: the sequence number and hash of the entry just
    before the first one kept (the last one pruned), or nothing pruned yet."""

    seq: int = 0
    "Sequence number of the last pruned entry (0: none; the first entry is 1)."
    hash: str = GENESIS
    "Its hash (:data:`GENESIS` when nothing was pruned)."


def canonical(fields: Fields) -> bytes:
    """``fields`` as canonical JSON: keys sorted, no spaces, UTF-8, no floats' NaN."""
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def link(previous: str, fields: Fields) -> str:
    """The hash of an entry with ``fields`` (without ``hash``) following an entry whose hash
    is ``previous``."""
    return hashlib.sha256(previous.encode("ascii") + canonical(fields)).hexdigest()


def seal(previous: str, fields: Fields) -> dict[str, Any]:
    """``fields`` with their ``hash`` added: the entry as it is written."""
    if "hash" in fields:
        raise ValueError("an entry to seal has no hash yet")
    return dict(fields) | {"hash": link(previous, fields)}


@dataclass(frozen=True)
class Problem:
    """The first entry of a chain that does not fit."""

    where: str
    "Where the entry is (a file and line), as the caller named it."
    seq: int | None
    "The sequence number the entry claims, when it could be read."
    reason: str
    "What is wrong, in a sentence."

    def __str__(self) -> str:
        entry = f"entry {self.seq}" if self.seq is not None else "an entry"
        return f"{self.where}: {entry}: {self.reason}"


class ChainCheck:
    """Checks a chain's lines in order, from an :class:`Anchor`.

    Feed each line with :meth:`feed`; the first line that does not fit is returned as a
    :class:`Problem`, and the check stops there (later lines would all be blamed for it).
    """

    def __init__(self, anchor: Anchor = Anchor()) -> None:
        self.seq = anchor.seq
        "The sequence number of the last entry that fitted."
        self.hash = anchor.hash
        "Its hash: the chain's head so far."
        self.entries = 0
        "How many entries fitted."
        self.problem: Problem | None = None
        "The first entry that did not fit, once found."

    def feed(self, where: str, line: str) -> Problem | None:
        """Check one line (one entry); its :class:`Problem`, or None if it fits."""
        if self.problem is not None:
            return self.problem
        self.problem = self._check(where, line)
        return self.problem

    def _check(self, where: str, line: str) -> Problem | None:
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            return Problem(where, None, "not a JSON object (the line was altered or cut short)")
        if not isinstance(entry, dict):
            return Problem(where, None, "not a JSON object (the line was altered)")
        seq = entry.get("seq")
        claimed = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
        stored = entry.pop("hash", None)
        if claimed is None or not isinstance(stored, str):
            return Problem(where, claimed, "has no sequence number or hash (it was altered)")
        if claimed != self.seq + 1:
            return Problem(
                where,
                claimed,
                f"follows entry {self.seq}: entries are missing or out of order",
            )
        try:
            expected = link(self.hash, entry)
        except ValueError:  # NaN or infinity: no entry is written with them
            return Problem(where, claimed, "holds a value no entry is written with (altered)")
        if expected != stored:
            return Problem(
                where,
                claimed,
                "its hash does not match its contents and the entry before it (this entry "
                "was altered, or the one before it was altered and its hash recomputed)",
            )
        self.seq, self.hash = claimed, stored
        self.entries += 1
        return None
