"""The admin API's listing of undelivered webhook events as the front answers it: every
worker's, one list (each worker sends the events of the rooms it is home to)."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["merge_undelivered"]


def _listing(body: bytes) -> dict[str, Any] | None:
    """A ``GET /api/webhooks/undelivered`` document, None when ``body`` is not one."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        return None
    return document


def merge_undelivered(base: bytes, others: list[bytes]) -> bytes | None:
    """``base`` with the ``events`` of ``others`` (the same listing from other workers) after
    its own and ``waiting`` summed; None when ``base`` is no listing. An unusable other is
    left out."""
    document = _listing(base)
    if document is None:
        return None
    waiting = document.get("waiting")
    total = waiting if isinstance(waiting, int) else 0
    for body in others:
        other = _listing(body)
        if other is None:
            continue
        document["events"].extend(other["events"])
        if isinstance(other.get("waiting"), int):
            total += other["waiting"]
    document["waiting"] = total
    return json.dumps(document).encode()
