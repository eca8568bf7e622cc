"""The load test's report: figures per track and per subscriber, a summary, JSON and HTML."""

from __future__ import annotations

import html
import math
import statistics
from typing import Any

from .client import SUBSCRIBER, LoadClient

Timeline = list[dict[str, Any]]


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0-1) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _rate(octets: int, first: float, last: float) -> float:
    return octets * 8 / (last - first) if last > first else 0.0


def subscriber_rows(clients: list[LoadClient]) -> list[dict[str, Any]]:
    """One row per subscriber: what it received of each track, its loss and join times."""
    rows = []
    for client in clients:
        if client.spec.role != SUBSCRIBER:
            continue
        tracks: dict[str, dict[str, Any]] = {}
        rtx_packets = 0
        for ssrc, stream in client.streams.items():
            info, rtx = client.ssrc_tracks.get(ssrc, (None, False))
            if rtx:
                rtx_packets += stream.packets
                continue
            key = info.track_id if info else f"ssrc{ssrc}"
            tracks[key] = {
                "kind": info.kind if info else "?",
                "publisher": info.participant_id if info else "?",
                "packets": stream.packets,
                "bytes": stream.bytes,
                "expected": stream.expected,
                "lost": stream.lost,
                "loss": stream.lost / stream.expected if stream.expected else 0.0,
                "bitrate_bps": _rate(stream.bytes, stream.first_at, stream.last_at),
            }
        expected = sum(t["expected"] for t in tracks.values())
        lost = sum(t["lost"] for t in tracks.values())
        rows.append(
            {
                "name": client.spec.name,
                "room": client.spec.room_id,
                "decodes": client.spec.decode,
                "join_s": client.joined_s,
                "ready_s": client.ready_s,
                "tracks": tracks,
                "packets": sum(t["packets"] for t in tracks.values()),
                "bitrate_bps": sum(t["bitrate_bps"] for t in tracks.values()),
                "loss": lost / expected if expected else 0.0,
                "rtx_packets": rtx_packets,
                "decoded_frames": dict(client.frames),
                "decoded_sizes": dict(client.frame_sizes),
                "speaker_changes": client.speaker_changes,
                "errors": list(client.errors),
            }
        )
    return rows


def track_rows(
    publishers: list[dict[str, Any]], subscribers: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per published track: what its publisher sent and what subscribers received."""
    rows = []
    for publisher in publishers:
        for kind, track_id in publisher["tracks"].items():
            sent = publisher["sent"].get(kind, {})
            received = [
                s["tracks"][track_id]
                for s in subscribers
                if s["room"] == publisher["room"] and track_id in s["tracks"]
            ]
            rows.append(
                {
                    "room": publisher["room"],
                    "track_id": track_id,
                    "publisher": publisher["name"],
                    "kind": kind,
                    "sent_packets": sent.get("packets", 0),
                    "sent_bitrate_bps": sent.get("bitrate_bps", 0.0),
                    "subscribers": len(received),
                    "received_packets": sum(r["packets"] for r in received),
                    "bitrate_bps_mean": statistics.fmean(r["bitrate_bps"] for r in received)
                    if received
                    else 0.0,
                    "loss_mean": statistics.fmean(r["loss"] for r in received) if received else 0.0,
                    "loss_max": max((r["loss"] for r in received), default=0.0),
                }
            )
    return rows


def summarise(
    clients: list[LoadClient],
    publishers: list[dict[str, Any]],
    subscribers: list[dict[str, Any]],
    tracks: list[dict[str, Any]],
    timeline: Timeline,
    steady_from: float,
) -> dict[str, Any]:
    """The run in a few figures (server figures over the steady phase, after every join)."""
    joins = [c.joined_s for c in clients if c.joined_s is not None]
    readies = [c.ready_s for c in clients if c.ready_s is not None]
    losses = [s["loss"] for s in subscribers]
    steady = [p for p in timeline if p["t"] >= steady_from]

    def series(key: str) -> list[float]:
        return [p[key] for p in steady if p.get(key) is not None]

    def stats(values: list[float]) -> dict[str, float | None]:
        return {
            "mean": statistics.fmean(values) if values else None,
            "max": max(values) if values else None,
        }

    return {
        "clients": len(clients),
        "joined": len(joins),
        "ready": len(readies),
        "publishers": len(publishers),
        "subscribers": len(subscribers),
        "tracks": len(tracks),
        "join_s": {"p50": percentile(joins, 0.5), "p95": percentile(joins, 0.95)},
        "ready_s": {"p50": percentile(readies, 0.5), "p95": percentile(readies, 0.95)},
        "loss": {
            "mean": statistics.fmean(losses) if losses else None,
            "max": max(losses) if losses else None,
        },
        "packets_received": sum(s["packets"] for s in subscribers),
        "subscriber_bitrate_bps": stats([s["bitrate_bps"] for s in subscribers]),
        "decoded_frames": sum(sum(s["decoded_frames"].values()) for s in subscribers),
        "speaker_changes_seen": max((c.speaker_changes for c in clients), default=0),
        "server_cpu_percent": stats(series("server_cpu_percent")),
        "server_rss_mb": stats(series("server_rss_mb")),
        "server_egress_pps": stats(series("server_egress_pps")),
        "client_rx_pps": stats(series("rx_pps")),
        "errors": sum(len(c.errors) for c in clients),
    }


# -- text --------------------------------------------------------------------------------------


def _f(value: float | None, pattern: str = "{:.2f}") -> str:
    return "-" if value is None else pattern.format(value)


def text_report(result: dict[str, Any], max_rows: int = 40) -> str:
    """The tables and summary printed at the end of a run."""
    lines = ["", "Tracks"]
    lines.append(
        f"{'room':<14} {'track':<6} {'publisher':<12} {'kind':<5} {'sent pkt':>9}"
        f" {'sent kbit/s':>11} {'subs':>5} {'rx pkt':>10} {'rx kbit/s':>10} {'loss avg':>8}"
        f" {'loss max':>8}"
    )
    for t in result["tracks"]:
        lines.append(
            f"{t['room']:<14} {t['track_id']:<6} {t['publisher']:<12} {t['kind']:<5}"
            f" {t['sent_packets']:>9,} {t['sent_bitrate_bps'] / 1000:>11,.0f} {t['subscribers']:>5}"
            f" {t['received_packets']:>10,} {t['bitrate_bps_mean'] / 1000:>10,.0f}"
            f" {t['loss_mean']:>8.2%} {t['loss_max']:>8.2%}"
        )
    subscribers = result["subscribers"]
    lines += ["", f"Subscribers ({len(subscribers)}; worst loss first, at most {max_rows})"]
    lines.append(
        f"{'name':<14} {'room':<14} {'tracks':>6} {'packets':>9} {'kbit/s':>8} {'loss':>7}"
        f" {'join s':>7} {'ready s':>7} {'decoded':>8} {'errors':>6}"
    )
    for s in sorted(subscribers, key=lambda s: -s["loss"])[:max_rows]:
        decoded = sum(s["decoded_frames"].values()) if s["decodes"] else "-"
        lines.append(
            f"{s['name']:<14} {s['room']:<14} {len(s['tracks']):>6} {s['packets']:>9,}"
            f" {s['bitrate_bps'] / 1000:>8,.0f} {s['loss']:>7.2%} {_f(s['join_s']):>7}"
            f" {_f(s['ready_s']):>7} {decoded!s:>8} {len(s['errors']):>6}"
        )
    m = result["summary"]
    lines += [
        "",
        "Summary",
        f"  clients {m['clients']} ({m['publishers']} publishing, {m['subscribers']} subscribing),"
        f" joined {m['joined']}, ready {m['ready']}, tracks {m['tracks']}",
        f"  join (socket -> joined)  p50 {_f(m['join_s']['p50'], '{:.3f}')} s"
        f"  p95 {_f(m['join_s']['p95'], '{:.3f}')} s",
        f"  ready (socket -> media)  p50 {_f(m['ready_s']['p50'], '{:.3f}')} s"
        f"  p95 {_f(m['ready_s']['p95'], '{:.3f}')} s",
        f"  loss per subscriber      mean {_f(m['loss']['mean'], '{:.3%}')}"
        f"  max {_f(m['loss']['max'], '{:.3%}')}",
        f"  received                 {m['packets_received']:,} packets, per subscriber"
        f" {_f(m['subscriber_bitrate_bps']['mean'], '{:,.0f}')} bit/s mean",
        f"  server CPU               mean {_f(m['server_cpu_percent']['mean'], '{:.1f}')}%"
        f"  max {_f(m['server_cpu_percent']['max'], '{:.1f}')}% of one core",
        f"  server memory (RSS)      mean {_f(m['server_rss_mb']['mean'], '{:.1f}')} MiB"
        f"  max {_f(m['server_rss_mb']['max'], '{:.1f}')} MiB",
        f"  server egress            mean {_f(m['server_egress_pps']['mean'], '{:,.0f}')} pkt/s"
        f"  max {_f(m['server_egress_pps']['max'], '{:,.0f}')} pkt/s"
        f" (clients saw {_f(m['client_rx_pps']['mean'], '{:,.0f}')} pkt/s)",
        f"  decoded frames (sample)  {m['decoded_frames']:,}"
        f"   active-speaker events {m['speaker_changes_seen']}",
        f"  errors                   {m['errors']}",
    ]
    for error in result["errors"][:20]:
        lines.append(f"    {error}")
    verdict = result["verdict"]
    lines.append(f"  verdict                  {'PASS' if verdict['passed'] else 'FAIL'}")
    for failure in verdict["failures"]:
        lines.append(f"    {failure}")
    return "\n".join(lines)


# -- HTML --------------------------------------------------------------------------------------

CHART_W, CHART_H, PAD_L, PAD_B, PAD_T, PAD_R = 720, 200, 64, 28, 12, 12
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def svg_chart(title: str, unit: str, series: list[tuple[str, list[tuple[float, float]]]]) -> str:
    """A self-contained SVG line chart of ``series`` (label, [(t, value)])."""
    points = [p for _, values in series for p in values]
    t_max = max((t for t, _ in points), default=1.0) or 1.0
    v_max = max((v for _, v in points), default=1.0) or 1.0
    v_max *= 1.1
    plot_w, plot_h = CHART_W - PAD_L - PAD_R, CHART_H - PAD_T - PAD_B

    def x(t: float) -> float:
        return PAD_L + t / t_max * plot_w

    def y(v: float) -> float:
        return PAD_T + plot_h - v / v_max * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{CHART_H}"'
        f' viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="{html.escape(title)}">',
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{plot_w}" height="{plot_h}" fill="#fafafa"'
        ' stroke="#ccc"/>',
    ]
    for i in range(5):
        v = v_max * i / 4
        parts.append(
            f'<line x1="{PAD_L}" x2="{PAD_L + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}"'
            ' stroke="#e4e4e4"/>'
            f'<text x="{PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11">'
            f"{v:,.3g}</text>"
        )
    for i in range(6):
        t = t_max * i / 5
        parts.append(
            f'<text x="{x(t):.1f}" y="{CHART_H - 10}" text-anchor="middle" font-size="11">'
            f"{t:.0f} s</text>"
        )
    parts.append(
        f'<text x="12" y="{PAD_T + plot_h / 2:.0f}" font-size="11" transform="rotate(-90 12'
        f' {PAD_T + plot_h / 2:.0f})" text-anchor="middle">{html.escape(unit)}</text>'
    )
    for i, (label, values) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        if values:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in values)
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{path}"/>'
            )
        parts.append(
            f'<text x="{PAD_L + 8 + 180 * i}" y="{PAD_T + 14}" font-size="12" fill="{colour}">'
            f"{html.escape(label)}</text>"
        )
    parts.append("</svg>")
    return f"<h3>{html.escape(title)}</h3>\n" + "".join(parts)


def _points(timeline: Timeline, key: str, scale: float = 1.0) -> list[tuple[float, float]]:
    return [(p["t"], p[key] * scale) for p in timeline if p.get(key) is not None]


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for title, _, _ in columns)
    body = []
    for row in rows:
        cells = []
        for _, key, pattern in columns:
            value = row.get(key)
            text = "-" if value is None else pattern.format(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def html_report(result: dict[str, Any], text: str) -> str:
    """A self-contained HTML page: charts (inline SVG), tables and the text summary."""
    timeline = result["timeline"]
    charts = [
        svg_chart(
            "Server CPU", "% of one core", [("CPU", _points(timeline, "server_cpu_percent"))]
        ),
        svg_chart("Server memory", "MiB", [("RSS", _points(timeline, "server_rss_mb"))]),
        svg_chart(
            "Packets",
            "packets/s",
            [
                ("server egress", _points(timeline, "server_egress_pps")),
                ("received by clients", _points(timeline, "rx_pps")),
            ],
        ),
        svg_chart(
            "Bitrate received by all subscribers",
            "Mbit/s",
            [("bitrate", _points(timeline, "rx_bps", 1e-6))],
        ),
        svg_chart(
            "Loss (per second, all subscribers)", "%", [("loss", _points(timeline, "loss", 100))]
        ),
        svg_chart("Participants", "clients", [("joined", _points(timeline, "joined"))]),
    ]
    subscribers = [
        s | {"tracks_n": len(s["tracks"]), "decoded": sum(s["decoded_frames"].values())}
        for s in result["subscribers"]
    ]
    tracks = _table(
        result["tracks"],
        [
            ("room", "room", "{}"),
            ("track", "track_id", "{}"),
            ("publisher", "publisher", "{}"),
            ("kind", "kind", "{}"),
            ("sent packets", "sent_packets", "{:,}"),
            ("sent bit/s", "sent_bitrate_bps", "{:,.0f}"),
            ("subscribers", "subscribers", "{}"),
            ("received packets", "received_packets", "{:,}"),
            ("bit/s per subscriber", "bitrate_bps_mean", "{:,.0f}"),
            ("loss mean", "loss_mean", "{:.3%}"),
            ("loss max", "loss_max", "{:.3%}"),
        ],
    )
    subs = _table(
        subscribers,
        [
            ("name", "name", "{}"),
            ("room", "room", "{}"),
            ("tracks", "tracks_n", "{}"),
            ("packets", "packets", "{:,}"),
            ("bit/s", "bitrate_bps", "{:,.0f}"),
            ("loss", "loss", "{:.3%}"),
            ("join s", "join_s", "{:.3f}"),
            ("ready s", "ready_s", "{:.3f}"),
            ("decoded frames", "decoded", "{:,}"),
        ],
    )
    verdict = "PASS" if result["verdict"]["passed"] else "FAIL"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Load test {verdict}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0 24px; }}
th, td {{ border: 1px solid #ddd; padding: 3px 8px; text-align: right; }}
th {{ background: #f0f0f0; }}
pre {{ background: #f7f7f7; padding: 12px; overflow-x: auto; }}
.verdict {{ font-weight: bold; color: {"#2a7" if verdict == "PASS" else "#c22"}; }}
</style></head><body>
<h1>Load test: <span class="verdict">{verdict}</span></h1>
<p>{html.escape(result["config"]["url"])} &middot; {result["config"]["rooms"]} room(s) &middot;
started {html.escape(result["started_at"])}</p>
<pre>{html.escape(text)}</pre>
<h2>Over time</h2>
{"".join(charts)}
<h2>Tracks</h2>
{tracks}
<h2>Subscribers</h2>
{subs}
</body></html>
"""
