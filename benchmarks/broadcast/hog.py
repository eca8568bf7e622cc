"""A noisy neighbour: another process that takes a fixed share of the server's core.

``--cpu-hog FRACTION`` runs this module as a child pinned to the server's first core. It spins
while its own CPU time is below ``FRACTION`` of the wall time since it started and sleeps
otherwise, so over any second it uses that share of the core and no more. An ordinary process
competing with a busy server would get only half the core from the scheduler, whatever it
wanted; the hog therefore raises its scheduling weight (a lower nice value, as root) to the
weight that entitles it to ``FRACTION`` against one busy process, and the server is left with the
rest. The hog's measured CPU is printed with each run, so the share it really took is known.

Bounded: it exits after ``--seconds``, when its parent dies (``PR_SET_PDEATHSIG``) and on
SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SLICE_SECONDS = 0.002
"Spin and sleep in steps this short, so the share holds over every few milliseconds."
NICE_WEIGHTS = {
    0: 1024, -1: 1277, -2: 1586, -3: 1991, -4: 2501, -5: 3121, -6: 3906, -7: 4904, -8: 6100,
    -9: 7620, -10: 9548, -11: 11916, -12: 14949, -13: 18705, -14: 23254, -15: 29154,
}  # fmt: skip
"The kernel's CFS weight of each nice value (kernel/sched/core.c, sched_prio_to_weight)."
_PR_SET_PDEATHSIG = 1


def nice_for(fraction: float) -> int:
    """The highest nice value whose weight wins ``fraction`` of a core against one nice-0 task."""
    needed = 1024 * fraction / (1 - fraction)
    for nice in sorted(NICE_WEIGHTS, reverse=True):
        if NICE_WEIGHTS[nice] >= needed:
            return nice
    return min(NICE_WEIGHTS)


def spin(fraction: float, seconds: float) -> None:
    """Use ``fraction`` of this process's core for ``seconds`` (CPU time tracks the target)."""
    start = time.monotonic()
    cpu0 = time.process_time()
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            return
        ahead = (time.process_time() - cpu0) - fraction * (now - start)
        if ahead < 0:
            stop = time.process_time() + SLICE_SECONDS
            while time.process_time() < stop:
                pass
        else:
            time.sleep(max(SLICE_SECONDS, ahead / fraction))


class CpuHog:
    """The hog as a child process, from :meth:`start` to :meth:`stop`."""

    def __init__(self, fraction: float, core: int, seconds: float) -> None:
        self.fraction = fraction
        self.core = core
        self.seconds = seconds
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start spinning on ``core``."""
        command = [
            "taskset", "-c", str(self.core), sys.executable, str(Path(__file__).resolve()),
            "--fraction", str(self.fraction), "--seconds", str(self.seconds),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )

    def cpu_seconds(self) -> float:
        """The hog's CPU time so far (0 before it started or after it ended)."""
        if self.process is None:
            return 0.0
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return 0.0

    def stop(self) -> None:
        """End the hog (bounded)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def main() -> int:
    parser = argparse.ArgumentParser(description="Use a share of this process's core.")
    parser.add_argument("--fraction", type=float, required=True, help="share of the core, 0-1")
    parser.add_argument("--seconds", type=float, required=True, help="stop after this long")
    args = parser.parse_args()
    if not 0 < args.fraction < 1 or not 0 < args.seconds <= 24 * 3600:
        parser.error("--fraction in (0, 1), --seconds in (0, 86400]")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        os.nice(nice_for(args.fraction))
    except PermissionError:
        print("cpu hog: not allowed to raise its priority; it gets what it can", file=sys.stderr)
    spin(args.fraction, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
