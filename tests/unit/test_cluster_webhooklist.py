"""The front's one listing of undelivered webhook events from every worker's."""

from __future__ import annotations

import json

from mcu.app.cluster.webhooklist import merge_undelivered


def _listing(waiting: int, *ids: str) -> bytes:
    events = [{"id": i, "state": "dropped"} for i in ids]
    return json.dumps({"receivers": ["http://p/h"], "waiting": waiting, "events": events}).encode()


def test_every_workers_events_are_listed_and_waiting_summed() -> None:
    merged = merge_undelivered(_listing(1, "a"), [_listing(2, "b", "c"), b"<html>", b"[]"])
    assert merged is not None
    document = json.loads(merged)
    assert [e["id"] for e in document["events"]] == ["a", "b", "c"]
    assert document["waiting"] == 3 and document["receivers"] == ["http://p/h"]


def test_a_first_reply_that_is_no_listing_is_passed_on_as_it_came() -> None:
    assert merge_undelivered(b'{"error": "unauthorized"}', [_listing(0)]) is None
    assert merge_undelivered(b"not json", []) is None
