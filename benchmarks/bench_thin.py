"""Thin links: what a clinic behind a slow, lossy line gets, with downlink adaptation on and off.

    .venv/bin/python benchmarks/bench_thin.py                       # every line, both modes
    .venv/bin/python benchmarks/bench_thin.py --rates 2000 --loss 3 --window 15

The room is tests/e2e/thin_room.py's (five Chromium cameras at 640x360 VP8 with temporal
layers on loopback, slides from a shared PDF, the clinic's Chromium in a network namespace of
its own). For each mode (the server started with `--adapt-downlinks`, then
`--no-adapt-downlinks`) and each line (`--rates` in kbit/s x `--loss` in percent, applied each
way with tc tbf and nftables, tests/support/impair.py), the script waits `--settle` seconds,
measures `--window` seconds and prints, for the clinic:

- the rung it was put on (docs/thin-links.md) and how long after the line changed the server
  first moved it ("adapt");
- frames per second of its smoothest camera and of all cameras together, Chromium's
  freezeCount over every video, the share of audio samples concealed;
- the server's CPU time per second over the window (the whole process), so the cost of
  adaptation shows against the same room without it, and the keyframes it asked of the
  publishers per second (``mcu_keyframe_requests_sent_total``): thinning must not become a
  keyframe storm.

Between lines the link is made clean and the clinic given up to `--climb` seconds to get
everything back (printed as "climb"). Figures are printed, never asserted on; the exit status
is 2 only when the room could not be set up. Loopback and private test addresses only: the
script re-executes itself in a private network namespace unless it already is in one, and needs
root there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE.parent, HERE):  # run as a script from anywhere
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from broadcast.netns import reexec_isolated  # noqa: E402

from tests.e2e.lossy_room import LossyRoom  # noqa: E402
from tests.e2e.thin_room import (  # noqa: E402
    latest_rung,
    measure,
    ramped,
    thin_room,
    wait_for_rung,
)
from tests.support.impair import impair_available  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def first_move(room: LossyRoom, before: str, limit: float) -> float | None:
    """Seconds until the clinic's rung differs from `before`, or None within `limit`."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if await latest_rung(room.far, room.far_id) != before:
            return time.monotonic() - started
        await asyncio.sleep(0.25)
    return None


async def line(room: LossyRoom, kbit: int, loss: int, args: argparse.Namespace) -> str:
    """Measure one line; returns the printed row."""
    assert room.server.process is not None
    before = await latest_rung(room.far, room.far_id)
    await room.link.set_rate(kbit)
    await room.link.set_loss(loss)
    moved = asyncio.ensure_future(first_move(room, before, args.settle + args.window))
    await asyncio.sleep(args.settle)
    cpu = cpu_seconds(room.server.process.pid)
    counters = await room.server_counters()
    (clinic,) = await measure([room.far], args.window)
    cpu = (cpu_seconds(room.server.process.pid) - cpu) / clinic.seconds
    after = await room.server_counters()
    keyframes = (
        after["mcu_keyframe_requests_sent_total"] - counters["mcu_keyframe_requests_sent_total"]
    ) / clinic.seconds
    rung = await latest_rung(room.far, room.far_id)
    estimates = await room.far.evaluate(
        "window.mcu.messages.filter(m => m.type === 'link'"
        f" && m.participant_id === {json.dumps(room.far_id)}).map(m => m.estimate_bps)"
    )
    adapt = await moved
    await room.link.set_rate(None)
    await room.link.set_loss(0)
    climb_started = time.monotonic()
    back = await wait_for_rung(room.far, room.far_id, True, args.climb)
    climb = time.monotonic() - climb_started
    total_fps = sum(clinic.camera_fps.values())
    return (
        f"{kbit / 1000:5.1f} Mbit/s {loss:2d} %  {rung:<14}"
        f" adapt {f'{adapt:4.1f} s' if adapt is not None else '   -  '}"
        f"  best camera {clinic.best_fps:4.1f} fps  all cameras {total_fps:5.1f} fps"
        f"  freezes {clinic.freezes:3.0f}  audio concealed {clinic.concealed:6.2%}"
        f"  received {clinic.kbit_per_s:5.0f} kbit/s  server CPU {cpu:5.1%}"
        f"  keyframes asked {keyframes:4.2f}/s"
        f"  estimates told (kbit/s) {[round((e or 0) / 1000) for e in estimates[-4:]]}"
        f"  climb {f'{climb:4.1f} s' if back == 'full' else 'not within limit'}"
    )


async def run(args: argparse.Namespace) -> int:
    rates = [int(value) for value in args.rates.split(",") if value.strip()]
    losses = [int(value) for value in args.loss.split(",") if value.strip()]
    modes = [("on", ())] if args.only_on else []
    if not args.only_on:
        modes = [("on", ()), ("off", ("--no-adapt-downlinks",))]
    with tempfile.TemporaryDirectory(prefix="bench-thin-") as work:
        for label, flags in modes:
            async with thin_room(Path(work) / label, server_args=flags) as room:
                rate = await ramped(room.near[0], args.ramp)
                print(
                    f"adaptation {label}: five cameras sending {rate / 1e6:.2f} Mbit/s together",
                    flush=True,
                )
                for kbit in rates:
                    for loss in losses:
                        print("  " + await line(room, kbit, loss, args), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1000,2000,4000,10000", help="kbit/s, comma-separated")
    parser.add_argument("--loss", default="0,2,5", help="loss percentages, comma-separated")
    parser.add_argument("--settle", type=float, default=8.0, help="seconds before measuring")
    parser.add_argument("--window", type=float, default=12.0, help="seconds measured per line")
    parser.add_argument("--climb", type=float, default=60.0, help="longest wait to climb back")
    parser.add_argument("--ramp", type=float, default=45.0, help="longest wait for the cameras")
    parser.add_argument("--only-on", action="store_true", help="adaptation on only")
    args = parser.parse_args()
    why = reexec_isolated(__file__, sys.argv[1:])
    if why is not None:
        print(f"note: {why}", file=sys.stderr)
    if (reason := impair_available()) is not None:
        print(f"cannot impair links here: {reason}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(args))
    except AssertionError as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
