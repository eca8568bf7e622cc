"""A broadcast run's figures: per-viewer loss and bitrate over the steady window, server CPU per
process, egress per worker, the generator's CPU; the printed report, the sweep table, the
scaling between worker counts."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from broadcast.server import SERVER_GAUGES, ProcessSample, cpu_percent

KINDS = ("audio", "video")


@dataclass
class Snapshot:
    """Everything read at one edge of the steady window."""

    at: float
    "Monotonic time (the benchmark's clock)."
    viewers: dict[str, dict[str, list[int]]]
    "Viewer name -> ``WhepViewer.counts()``."
    generator_cpu: list[float]
    "CPU seconds of each generator child process (empty when the viewers live in this one)."
    main_cpu: float
    "CPU seconds of the benchmark's own process (the lecturer, and the viewers when local)."
    server: ProcessSample
    "CPU seconds of each server process."
    packets_sent: dict[str, float] | None
    "``mcu_rtp_packets_sent_total`` per worker, or None when ``/metrics`` did not answer."
    core_busy: dict[int, float]
    "Busy seconds since boot of each core the benchmark uses (``/proc/stat``)."
    server_counters: dict[str, float] | None = None
    "The server's forwarding counters and gauges (``SERVER_COUNTERS``), summed over workers."
    udp: dict[str, int] = field(default_factory=dict)
    "The namespace's UDP counters (``/proc/net/snmp``)."
    hog_cpu: float | None = None
    "CPU seconds of the ``--cpu-hog`` process (None without one)."


def viewer_window(
    name: str, before: dict[str, list[int]], after: dict[str, list[int]], seconds: float
) -> dict[str, Any]:
    """One viewer's packets, loss and bitrate between two snapshots of its counts."""
    row: dict[str, Any] = {"name": name}
    got = expected = octets = 0
    for kind in KINDS:
        row[f"{kind}_bps"] = 0.0
    for key, (packets, span, size) in after.items():
        p0, e0, b0 = before.get(key, [0, 0, 0])
        octets += size - b0
        if key in KINDS:
            got += packets - p0
            expected += span - e0
            row[f"{key}_packets"] = packets - p0
            row[f"{key}_loss"] = max(0.0, 1 - (packets - p0) / (span - e0)) if span > e0 else 1.0
            row[f"{key}_bps"] = (size - b0) * 8 / seconds if seconds > 0 else 0.0
        else:
            row[f"{key}_packets"] = packets - p0
    row["loss"] = max(0.0, 1 - got / expected) if expected > 0 else 1.0
    row["bitrate_bps"] = octets * 8 / seconds if seconds > 0 else 0.0
    return row


def failure_reasons(failed: dict[str, str]) -> dict[str, int]:
    """How many viewers failed for each reason: ``503 busy``, ``429``, ``timed out``, ..."""
    reasons: dict[str, int] = {}
    for error in failed.values():
        status = re.search(r": (\d{3}) (?:\{\"error\": \"(\w+)\")?", error)
        if status is not None:
            reason = " ".join(part for part in status.groups() if part)
        elif error.startswith("no audio and video"):
            reason = "timed out"
        else:
            reason = error.split(":", 1)[0]
        reasons[reason] = reasons.get(reason, 0) + 1
    return dict(sorted(reasons.items(), key=lambda item: -item[1]))


MIN_RATE_RATIO = 0.9
"A viewer receiving less than this share of the clip's bitrate fails the run."


def summarise_run(
    *,
    viewers: int,
    workers: int,
    joined: dict[str, float | None],
    failed: dict[str, str],
    before: Snapshot,
    after: Snapshot,
    max_loss: float,
    generator_processes: int,
    expected_bps: float | None = None,
) -> dict[str, Any]:
    """The figures of one run and its verdict."""
    window = after.at - before.at
    rows = [
        viewer_window(name, before.viewers.get(name, {}), after.viewers.get(name, {}), window)
        for name in sorted(joined, key=_natural)
        if name in after.viewers
    ]
    losses = [r["loss"] for r in rows]
    rates = [r["bitrate_bps"] for r in rows]
    server_cpu = cpu_percent(before.server, after.server)
    restarted = sorted(set(before.server.cpu) ^ set(after.server.cpu)) + [
        label
        for label, (pid, _) in after.server.cpu.items()
        if label in before.server.cpu and before.server.cpu[label][0] != pid
    ]
    egress: dict[str, float] | None = None
    if before.packets_sent is not None and after.packets_sent is not None and window > 0:
        egress = {
            worker: (value - before.packets_sent.get(worker, 0.0)) / window
            for worker, value in sorted(after.packets_sent.items())
        }
    children = [
        100 * (b - a) / window
        for a, b in zip(before.generator_cpu, after.generator_cpu, strict=True)
    ]
    main = 100 * (after.main_cpu - before.main_cpu) / window
    cores = {
        core: 100 * (after.core_busy[core] - busy) / window
        for core, busy in before.core_busy.items()
    }
    server_total = sum(server_cpu.values())
    received = sum(value for r in rows for key, value in r.items() if key.endswith("_packets"))
    problems = []
    if failed:
        problems.append(f"{len(failed)} of {viewers} viewers failed to join")
    silent = [r["name"] for r in rows if not (r["audio_packets"] and r["video_packets"])]
    if silent:
        problems.append(f"{len(silent)} viewers received no audio or no video in the window")
    over = [r for r in rows if r["loss"] > max_loss]
    if over:
        problems.append(f"{len(over)} viewers lost more than {max_loss:.2%}")
    if expected_bps:
        # Loss counts sequence gaps only: a lecturer that fell behind its pace (an overloaded
        # generator) or a lagging server shows up as a lower rate instead.
        slow = [r for r in rows if r["bitrate_bps"] < MIN_RATE_RATIO * expected_bps]
        if slow:
            problems.append(
                f"{len(slow)} viewers received under {MIN_RATE_RATIO:.0%} of the lecture's"
                f" {expected_bps / 1000:,.0f} kbit/s (the lecturer or the server fell behind)"
            )
    if restarted:
        problems.append(f"server processes changed during the window: {', '.join(restarted)}")
    ready = [s for s in joined.values() if s is not None]
    per_kind = {
        kind: {
            "min": min((r[f"{kind}_bps"] for r in rows), default=None),
            "median": statistics.median(r[f"{kind}_bps"] for r in rows) if rows else None,
            "without": sum(1 for r in rows if not r.get(f"{kind}_packets")),
        }
        for kind in KINDS
    }
    counters: dict[str, float] | None = None
    if before.server_counters is not None and after.server_counters is not None:
        counters = {
            name: value - before.server_counters.get(name, 0.0)
            for name, value in after.server_counters.items()
        }
        for name in SERVER_GAUGES:
            if name in after.server_counters:
                counters[name] = after.server_counters[name]
    udp = {name: after.udp[name] - before.udp.get(name, 0) for name in after.udp}
    hog = (
        100 * (after.hog_cpu - before.hog_cpu) / window
        if after.hog_cpu is not None and before.hog_cpu is not None and window > 0
        else None
    )
    return {
        "viewers": viewers,
        "workers": workers,
        "joined": len(joined),
        "failed": len(failed),
        "failures": dict(list(failed.items())[:20]),
        "failure_reasons": failure_reasons(failed),
        "ready_s": {
            "median": statistics.median(ready) if ready else None,
            "max": max(ready, default=None),
        },
        "window_s": window,
        "loss": {
            "min": min(losses, default=None),
            "median": statistics.median(losses) if losses else None,
            "max": max(losses, default=None),
            "over_limit": len(over),
            "limit": max_loss,
        },
        "bitrate_bps": {
            "median": statistics.median(rates) if rates else None,
            "min": min(rates, default=None),
        },
        "kind_bitrate_bps": per_kind,
        "server_counters": counters,
        "udp": udp,
        "hog_cpu_percent": hog,
        "server_cpu_percent": server_cpu,
        "server_cpu_total_percent": server_total,
        "server_cpu_per_viewer_percent": server_total / len(rows) if rows else None,
        "egress_pps": egress,
        "egress_pps_total": sum(egress.values()) if egress is not None else None,
        "received_pps_total": received / window if window > 0 else 0.0,
        "generator": {
            "processes": generator_processes,
            "children_cpu_percent": children,
            "main_cpu_percent": main,
            "total_cpu_percent": main + sum(children),
            "core_busy_percent": cores,
        },
        "passed": not problems,
        "problems": problems,
        "viewer_rows": rows,
    }


def _natural(name: str) -> tuple[str, int]:
    head = name.rstrip("0123456789")
    return head, int(name[len(head) :] or 0)


def _f(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def run_report(run: dict[str, Any], server_cores: str, client_cores: str) -> str:
    """The lines printed after one run."""
    loss, rate, gen = run["loss"], run["bitrate_bps"], run["generator"]
    cpu = run["server_cpu_percent"]
    per_process = ", ".join(
        f"{'front' if label == 'front' else 'worker ' + label} {value:.1f} %"
        for label, value in sorted(cpu.items(), key=lambda item: _natural(item[0]))
    )
    egress, received = run["egress_pps"], run["received_pps_total"]
    egress_text = (
        "not available (/metrics did not answer)"
        if egress is None
        else ", ".join(f"worker {w} {v:,.0f}" for w, v in egress.items())
        + f" (total {run['egress_pps_total']:,.0f})"
    )
    egress_text += f"; received by all viewers {received:,.0f} pkt/s"
    if egress is not None and run["egress_pps_total"] < 0.5 * received:
        egress_text += " (the server's counter misses most of what viewers received)"
    children = gen["children_cpu_percent"]
    split = (
        f"this process {gen['main_cpu_percent']:.0f} % (lecturer and viewers)"
        if not children
        else f"this process {gen['main_cpu_percent']:.0f} % (lecturer), "
        + f"{len(children)} children "
        + " / ".join(f"{c:.0f} %" for c in children)
    )
    busy = ", ".join(f"core {c} {v:.0f} %" for c, v in gen["core_busy_percent"].items())
    lines = [
        f"N={run['viewers']} workers={run['workers']}: viewers joined {run['joined']},"
        f" failed {run['failed']}; ready median {_f(run['ready_s']['median'], '{:.2f}')} s,"
        f" max {_f(run['ready_s']['max'], '{:.2f}')} s; steady window {run['window_s']:.1f} s",
        f"  loss per viewer: min {_f(loss['min'], '{:.2%}')}, median"
        f" {_f(loss['median'], '{:.2%}')}, max {_f(loss['max'], '{:.2%}')};"
        f" viewers over {loss['limit']:.2%}: {loss['over_limit']}",
        f"  received per viewer: median {_f(rate['median'] and rate['median'] / 1e3, '{:,.0f}')}"
        f" kbit/s, min {_f(rate['min'] and rate['min'] / 1e3, '{:,.0f}')} kbit/s",
        "  "
        + "; ".join(
            f"{kind} per viewer: min {_kbit(per['min'])}, median {_kbit(per['median'])} kbit/s"
            + (f" ({per['without']} received none)" if per["without"] else "")
            for kind, per in run.get("kind_bitrate_bps", {}).items()
        ),
        f"  server CPU (cores {server_cores}): {run['server_cpu_total_percent']:.1f} % of a core,"
        f" {_f(run['server_cpu_per_viewer_percent'], '{:.3f}')} % per viewer; {per_process}",
        f"  egress pkt/s: {egress_text}",
        f"  generator CPU (cores {client_cores}): {gen['total_cpu_percent']:.0f} % of a core;"
        f" {split}",
        f"  busy (all processes): {busy}",
    ]
    lecturer = run.get("lecturer_window_pps")
    if lecturer:
        lines.append(
            "  lecturer sent in the window: "
            + ", ".join(f"{kind} {pps:,.0f}" for kind, pps in sorted(lecturer.items()))
            + " pkt/s"
        )
    if run.get("hog_cpu_percent") is not None:
        lines.append(f"  CPU hog on the server's core: {run['hog_cpu_percent']:.0f} % of a core")
    counters = run.get("server_counters")
    if counters:
        lines.append("  server in the window: " + _counters_text(counters))
    udp = run.get("udp") or {}
    if udp:
        lines.append(
            f"  UDP in the namespace: {udp.get('RcvbufErrors', 0):,} dropped at full receive"
            f" buffers, {udp.get('SndbufErrors', 0):,} at full send buffers"
        )
    reasons = run.get("failure_reasons")
    if reasons:
        lines.append(
            "  failed by reason: " + ", ".join(f"{why} {count}" for why, count in reasons.items())
        )
    for name, error in list(run["failures"].items())[:5]:
        lines.append(f"  failed {name}: {error}")
    tail = run.get("server_log_tail", "").strip()
    if tail:
        lines.append("  server log (last lines):")
        lines.extend(f"    {line}" for line in tail.splitlines())
    if run["passed"]:
        lines.append(f"  PASS: every viewer joined and lost at most {loss['limit']:.2%}")
    else:
        lines.append("  FAIL: " + "; ".join(run["problems"]))
    return "\n".join(lines)


def _kbit(bps: float | None) -> str:
    return "-" if bps is None else f"{bps / 1e3:,.0f}"


_COUNTER_LABELS = (
    ("mcu_rtp_packets_received_total", "{:,.0f} packets in"),
    ("mcu_video_keyframes_received_total", "{:,.0f} keyframe starts in"),
    ("mcu_rtp_packets_dropped_total", "{:,.0f} sends refused"),
    ("mcu_video_consumer_stalls_total", "{:,.0f} video stalls"),
    ("mcu_video_packets_skipped_total", "{:,.0f} video packets skipped awaiting a keyframe"),
    ("mcu_keyframe_requests_sent_total", "{:,.0f} PLIs to the lecturer"),
    ("mcu_whep_refused_busy_total", "{:,.0f} viewers refused busy"),
    ("mcu_video_frames_shed_total", "{:,.0f} video frames shed"),
    ("mcu_rtp_packets_shed_total", "{:,.0f} packets shed"),
    ("mcu_nacks_withheld_total", "{:,.0f} NACKs to the lecturer withheld"),
    ("mcu_video_consumers_waiting_keyframe", "{:,.0f} video consumers waiting at the end"),
    ("mcu_event_loop_lag_last_seconds", "loop lag {:.2f} s at the end"),
    ("mcu_ingress_lateness_seconds", "ingress {:.2f} s behind at the end"),
)


def _counters_text(counters: dict[str, float]) -> str:
    """The server's counters over the window; refused sends with their reasons."""
    parts = []
    for name, pattern in _COUNTER_LABELS:
        if name not in counters:
            continue
        text = pattern.format(counters[name])
        if name == "mcu_rtp_packets_dropped_total":
            prefix = "mcu_rtp_send_refused_total:"
            reasons = [
                f"{key[len(prefix) :]} {value:,.0f}"
                for key, value in sorted(counters.items())
                if key.startswith(prefix) and value
            ]
            if reasons:
                text += f" ({', '.join(reasons)})"
        parts.append(text)
    return ", ".join(parts)


def sweep_table(runs: list[dict[str, Any]]) -> str:
    """One line per run."""
    lines = [
        f"{'W':>2} {'N':>5} {'joined':>6} {'failed':>6} {'loss med':>8} {'loss max':>8}"
        f" {'>limit':>6} {'kbit/s med':>10} {'srv CPU %':>9} {'%/viewer':>8}"
        f" {'egress pkt/s':>12} {'gen CPU %':>9}  verdict"
    ]
    for r in runs:
        if "error" in r:
            lines.append(f"{r['workers']:>2} {r['viewers']:>5}  error: {r['error']}")
            continue
        loss, rate = r["loss"], r["bitrate_bps"]
        lines.append(
            f"{r['workers']:>2} {r['viewers']:>5} {r['joined']:>6} {r['failed']:>6}"
            f" {_f(loss['median'], '{:.2%}'):>8} {_f(loss['max'], '{:.2%}'):>8}"
            f" {loss['over_limit']:>6}"
            f" {_f(rate['median'] and rate['median'] / 1e3, '{:,.0f}'):>10}"
            f" {r['server_cpu_total_percent']:>9.1f}"
            f" {_f(r['server_cpu_per_viewer_percent'], '{:.3f}'):>8}"
            f" {_f(r['egress_pps_total'], '{:,.0f}'):>12}"
            f" {r['generator']['total_cpu_percent']:>9.0f}  {'PASS' if r['passed'] else 'FAIL'}"
        )
    return "\n".join(lines)


def scaling(runs: list[dict[str, Any]], workers: list[int]) -> dict[str, Any]:
    """Per worker count: the most viewers held (every run up to it passed is not required) and
    the egress at that N; and each count's ratio to the first."""
    per: dict[str, Any] = {}
    for w in workers:
        held = [r for r in runs if r["workers"] == w and r.get("passed")]
        best = max(held, key=lambda r: r["viewers"], default=None)
        per[str(w)] = {
            "max_viewers_held": best["viewers"] if best else 0,
            "egress_pps_at_max": best["egress_pps_total"] if best else None,
            "server_cpu_percent_at_max": best["server_cpu_total_percent"] if best else None,
        }
    base = per[str(workers[0])]
    for w in workers[1:]:
        mine = per[str(w)]
        mine["viewers_ratio"] = (
            mine["max_viewers_held"] / base["max_viewers_held"]
            if base["max_viewers_held"]
            else None
        )
        mine["egress_ratio"] = (
            mine["egress_pps_at_max"] / base["egress_pps_at_max"]
            if mine["egress_pps_at_max"] and base["egress_pps_at_max"]
            else None
        )
    return per


def scaling_report(per: dict[str, Any], workers: list[int], max_loss: float) -> str:
    """Lines comparing worker counts."""
    lines = [f"Viewers held at <= {max_loss:.2%} loss (largest N that passed):"]
    for w in workers:
        s = per[str(w)]
        ratio = ""
        if "viewers_ratio" in s:
            ratio = (
                f"; vs {workers[0]} worker(s): viewers x{_f(s['viewers_ratio'], '{:.2f}')},"
                f" egress x{_f(s['egress_ratio'], '{:.2f}')}"
            )
        lines.append(
            f"  workers={w}: N={s['max_viewers_held']},"
            f" egress {_f(s['egress_pps_at_max'], '{:,.0f}')} pkt/s,"
            f" server CPU {_f(s['server_cpu_percent_at_max'], '{:.0f}')} %{ratio}"
        )
    return "\n".join(lines)
