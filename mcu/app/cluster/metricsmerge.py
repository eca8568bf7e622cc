"""One Prometheus exposition out of several processes' expositions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

__all__ = ["WORKER_LABEL", "merge_expositions"]

WORKER_LABEL = "worker"
"The label every merged sample carries: the index of the process it came from, or ``front``."


class _Merged(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def merge_expositions(expositions: Mapping[str, str]) -> bytes:
    """Merge ``{worker label: exposition text}`` into one exposition (text format 0.0.4).

    Each family appears once, with every process's samples, each labelled
    ``worker="<label>"`` (replacing a ``worker`` label the sample had). A family that two
    processes expose with different types keeps the first type and the samples that fit it.
    Raises ``ValueError`` when an exposition does not parse.
    """
    families: dict[str, Metric] = {}
    for worker, text in expositions.items():
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = Metric(family.name, family.documentation, family.type, family.unit)
                families[family.name] = merged
            elif merged.type != family.type:
                continue
            for sample in family.samples:
                merged.samples.append(
                    Sample(
                        sample.name,
                        sample.labels | {WORKER_LABEL: worker},
                        sample.value,
                        sample.timestamp,
                        sample.exemplar,
                    )
                )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(list(families.values())))
    return generate_latest(registry)
