"""Refused credentials and lockouts reach the audit trail from the room domain's entrance, with
what was presented but never the secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcu.infra.auditlog import AuditLog
from mcu.infra.auditquery import AuditQuery, search
from mcu.signaling.rooms.admission import Bearer, Entry, Password, Refused
from mcu.signaling.rooms.entrance import Entrance
from mcu.signaling.rooms.throttle import ADDRESS_IN_ROOM, LoginThrottle
from tests.unit.test_entrance import HOSPITAL, LECTURE, SIGNER, T0, Live, Store


def _everything_written(folder: Path) -> str:
    return "".join(path.read_text() for path in folder.rglob("*.jsonl"))


async def test_refusals_and_lockouts_are_recorded_without_the_password(tmp_path: Path) -> None:
    throttle = LoginThrottle()
    for _ in range(ADDRESS_IN_ROOM.threshold):  # HOSPITAL has failed too often already
        assert throttle.begin(HOSPITAL, "stroke-4", T0) is None
        throttle.failed(HOSPITAL, "stroke-4", T0)
    audit = AuditLog(tmp_path, 0, 365, clock=lambda: T0)
    await audit.open()
    gate = Entrance(Store(LECTURE), SIGNER, throttle, Live(), 16, clock=lambda: T0, audit=audit)
    try:
        with pytest.raises(Refused):
            await gate.admit(Entry.JOIN, "stroke-4", Password("guess-one-two"), "192.0.2.9", "Li")
        with pytest.raises(Refused):
            await gate.admit(Entry.PUBLISH, "stroke-4", Bearer("lecturers-pass"), HOSPITAL)
        admitted = await gate.admit(Entry.JOIN, "stroke-4", Password("audience-pass"), "192.0.2.9")
        assert admitted.role == "viewer"  # admissions are the endpoints' to record, as joins
    finally:
        await audit.close()
    entries = search(tmp_path, AuditQuery())
    assert [(e["action"], e["actor"], e["address"], e["details"]) for e in entries] == [
        (
            "admission.refused",
            "Li",
            "192.0.2.9",
            {"entry": "join", "code": "wrong_password", "credential": "password"},
        ),
        (
            "admission.locked_out",
            "anonymous",
            HOSPITAL,
            {"entry": "publish", "code": "rate_limited", "credential": "bearer"},
        ),
    ]
    written = _everything_written(tmp_path)
    for secret in ("guess-one-two", "lecturers-pass", "audience-pass"):
        assert secret not in written
