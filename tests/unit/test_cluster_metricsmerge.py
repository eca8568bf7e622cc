"""Merging workers' expositions: every family once, every sample labelled by its worker."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mcu.app.cluster.metricsmerge import merge_expositions


def _exposition(packets: int, worker: str) -> str:
    registry = CollectorRegistry()
    counter = Counter("mcu_packets", "Packets.", ["reason"], registry=registry)
    counter.labels("malformed").inc(packets)
    Gauge("mcu_rooms", "Rooms.", registry=registry).set(packets * 2)
    histogram = Histogram("mcu_lag_seconds", "Lag.", buckets=(0.1, 1.0), registry=registry)
    histogram.observe(0.5)
    info = Gauge(
        "mcu_worker_info", 'Info with "quotes" and \\ in help.', ["worker"], registry=registry
    )
    info.labels(worker).set(1)
    return generate_latest(registry).decode()


def test_every_family_once_with_worker_labels() -> None:
    merged = merge_expositions(
        {"0": _exposition(3, "0"), "1": _exposition(5, "1"), "front": _exposition(0, "x")}
    ).decode()
    families = {f.name: f for f in text_string_to_metric_families(merged)}
    assert sorted(families) == ["mcu_lag_seconds", "mcu_packets", "mcu_rooms", "mcu_worker_info"]
    assert merged.count("# TYPE mcu_packets_total counter") == 1
    packets = {s.labels["worker"]: s.value for s in families["mcu_packets"].samples}
    assert packets == {"0": 3.0, "1": 5.0, "front": 0.0}
    assert all(s.labels["reason"] == "malformed" for s in families["mcu_packets"].samples)
    assert families["mcu_lag_seconds"].type == "histogram"
    buckets = [s for s in families["mcu_lag_seconds"].samples if s.name.endswith("_bucket")]
    assert len(buckets) == 3 * 3
    # A worker label the sample already had is replaced by the process it came from.
    info = {s.labels["worker"] for s in families["mcu_worker_info"].samples}
    assert info == {"0", "1", "front"}


def test_type_conflicts_keep_the_first_type() -> None:
    a = "# TYPE m gauge\nm 1\n"
    b = "# TYPE m summary\nm_count 1\nm_sum 7\n"
    families = list(text_string_to_metric_families(merge_expositions({"0": a, "1": b}).decode()))
    assert [(f.name, f.type, len(f.samples)) for f in families] == [("m", "gauge", 1)]


def test_empty_and_broken_input() -> None:
    assert merge_expositions({}) == b""
    with pytest.raises(ValueError):
        merge_expositions({"0": "m{ 1\n"})
