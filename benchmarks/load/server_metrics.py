"""The server's own figures, read from its Prometheus ``/metrics`` endpoint once a second."""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiohttp

WATCHED = {
    "cpu_seconds": "process_cpu_seconds_total",
    "rss_bytes": "process_resident_memory_bytes",
    "packets_sent": "mcu_rtp_packets_sent_total",
    "packets_received": "mcu_rtp_packets_received_total",
}


def parse_metrics(text: str) -> dict[str, float]:
    """The watched unlabelled samples of a Prometheus text exposition (missing ones left out)."""
    values = {}
    for key, name in WATCHED.items():
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        if match:
            values[key] = float(match.group(1))
    return values


@dataclass
class ServerSample:
    """One reading of the server's counters, with the rates since the previous reading."""

    t: float
    "Seconds since the run started."
    cpu_percent: float | None
    "Server CPU over the last interval, percent of one core."
    rss_mb: float | None
    "Resident memory, MiB."
    egress_pps: float | None
    "RTP packets forwarded per second (``mcu_rtp_packets_sent``)."
    ingress_pps: float | None
    "RTP packets received from publishers per second."


class MetricsSampler:
    """Reads ``/metrics`` and turns consecutive readings into rates."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = url
        self._last: tuple[float, dict[str, float]] | None = None
        self.failures = 0

    async def sample(self, t: float) -> ServerSample | None:
        """One reading at run time ``t``; None when the endpoint did not answer."""
        try:
            async with self._session.get(
                self._url, timeout=aiohttp.ClientTimeout(total=2)
            ) as response:
                values = parse_metrics(await response.text())
        except (aiohttp.ClientError, TimeoutError):
            self.failures += 1
            return None
        last, self._last = self._last, (t, values)

        def rate(key: str, scale: float = 1.0) -> float | None:
            if last is None or key not in values or key not in last[1] or t <= last[0]:
                return None
            return max(0.0, values[key] - last[1][key]) / (t - last[0]) * scale

        rss = values.get("rss_bytes")
        return ServerSample(
            t=t,
            cpu_percent=rate("cpu_seconds", 100.0),
            rss_mb=rss / 2**20 if rss is not None else None,
            egress_pps=rate("packets_sent"),
            ingress_pps=rate("packets_received"),
        )
