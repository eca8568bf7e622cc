"""JSON integers longer than any field accepts, kept for validation to refuse by field name.

Python's ``int()`` refuses strings of more than 4,300 digits (CVE-2020-10735's guard against
quadratic conversion), so ``json.loads`` raises a bare ``ValueError`` on such a number before any
field is known, and one of a few thousand digits still costs milliseconds to convert. No field
of ours takes more than 16 digits, so :func:`loads` keeps a longer integer literal as an
:class:`OversizedNumber`: neither ``int`` nor ``str``, every field refuses it with its own name.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_INTEGER_DIGITS", "OversizedNumber", "find_oversized", "loads"]

MAX_INTEGER_DIGITS = 20
"Longest integer literal (sign excluded) read as an ``int``; 2**64 has 20 digits."


class OversizedNumber:
    """An integer literal of more than :data:`MAX_INTEGER_DIGITS` digits, not converted."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits
        "How many digits it had."

    def __repr__(self) -> str:
        return f"<a {self.digits}-digit integer>"


def _parse_int(text: str) -> int | OversizedNumber:
    digits = len(text) - text.startswith("-")
    if digits > MAX_INTEGER_DIGITS:
        return OversizedNumber(digits)
    return int(text)


def loads(text: str | bytes) -> Any:
    """``json.loads``, except that integers longer than :data:`MAX_INTEGER_DIGITS` digits come
    back as :class:`OversizedNumber` instead of raising ``ValueError``."""
    return json.loads(text, parse_int=_parse_int)


def find_oversized(document: Any) -> str | None:
    """The dotted path (``a.b.0``) of the first :class:`OversizedNumber` in a loaded document, or
    None when it holds none."""
    # Iterative: a document nested as deep as the JSON parser allows must not overflow the stack.
    pending: list[tuple[str, Any]] = [("", document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, OversizedNumber):
            return path
        children: list[tuple[str, Any]] = []
        if isinstance(value, dict):
            children = [(str(key), child) for key, child in value.items()]
        elif isinstance(value, list):
            children = [(str(index), child) for index, child in enumerate(value)]
        for key, child in reversed(children):  # first child popped first
            pending.append((f"{path}.{key}" if path else key, child))
    return None
