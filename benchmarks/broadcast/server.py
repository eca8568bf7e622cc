"""The server under test: ``python -m mcu`` started pinned with ``taskset``, and its figures.

The server runs as it would in production (``--workers W``), with a throw-away data directory,
an admin token in ``MCU_ADMIN_TOKEN``, HTTP and media on 127.0.0.1 only. Its CPU is read per
process from ``/proc/<pid>/stat``: with several workers the front and each worker (the front's
children, told apart by ``--worker-index``) separately; a single process is worker ``0``. Egress
comes from ``/metrics``: ``mcu_rtp_packets_sent_total`` per ``worker`` label (unlabelled when the
server is one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
_PR_SET_PDEATHSIG = 1
_SENT = re.compile(r"^mcu_rtp_packets_sent_total(?:\{([^}]*)\})? (\S+)", re.M)
_WORKER_LABEL = re.compile(r'worker="([^"]*)"')


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the benchmark dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (every thread), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (scanning ``/proc``: works without CONFIG_PROC_CHILDREN)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def worker_index(pid: int) -> str | None:
    """The ``--worker-index`` a process was started with, or None."""
    with contextlib.suppress(OSError):
        args = (Path(f"/proc/{pid}") / "cmdline").read_bytes().split(b"\0")
        for flag, value in itertools.pairwise(args):
            if flag == b"--worker-index":
                return value.decode()
            if flag.startswith(b"--worker-index="):
                return flag.split(b"=", 1)[1].decode()
    return None


SERVER_COUNTERS = (
    "mcu_rtp_packets_received_total",
    "mcu_rtp_packets_dropped_total",
    "mcu_rtp_send_refused_total",
    "mcu_video_consumer_stalls_total",
    "mcu_video_packets_skipped_total",
    "mcu_video_keyframes_received_total",
    "mcu_keyframe_requests_sent_total",
    "mcu_whep_refused_busy_total",
    "mcu_video_frames_shed_total",
    "mcu_rtp_packets_shed_total",
    "mcu_nacks_withheld_total",
)
"Counters read from ``/metrics`` at both edges of the window (summed over workers and labels)."
SERVER_GAUGES = (
    "mcu_video_consumers_waiting_keyframe",
    "mcu_event_loop_lag_last_seconds",
    "mcu_ingress_lateness_seconds",
)
"Gauges read at the end of the window."


BY_REASON = ("mcu_rtp_send_refused_total",)
"Counters also kept per ``reason`` label, as ``name:reason``."
_REASON_LABEL = re.compile(r'reason="([^"]*)"')


def sum_samples(exposition: str, names: tuple[str, ...]) -> dict[str, float]:
    """Each metric in ``names`` summed over all its samples (workers, labels); those in
    ``BY_REASON`` also per reason, as ``name:reason``."""
    totals = dict.fromkeys(names, 0.0)
    for line in exposition.splitlines():
        if not line or line[0] == "#":
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name not in totals:
            continue
        with contextlib.suppress(ValueError, IndexError):
            value = float(line.rsplit(" ", 1)[1])
            totals[name] += value
            reason = _REASON_LABEL.search(line) if name in BY_REASON else None
            if reason is not None:
                key = f"{name}:{reason.group(1)}"
                totals[key] = totals.get(key, 0.0) + value
    return totals


def udp_counters() -> dict[str, int]:
    """This network namespace's UDP counters (``/proc/net/snmp``): every socket in it, the
    server's and the viewers' alike. ``RcvbufErrors`` counts datagrams dropped because a
    receiver's buffer was full, ``SndbufErrors`` sends refused for a full send buffer."""
    with contextlib.suppress(OSError, ValueError):
        rows = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
        udp = [row[1:] for row in rows if row and row[0] == "Udp:"]
        if len(udp) >= 2:
            return {name: int(value) for name, value in zip(udp[0], udp[1], strict=False)}
    return {}


def packets_sent_by_worker(exposition: str) -> dict[str, float]:
    """``mcu_rtp_packets_sent_total`` per ``worker`` label (``0`` for an unlabelled sample)."""
    totals: dict[str, float] = {}
    for labels, value in _SENT.findall(exposition):
        match = _WORKER_LABEL.search(labels or "")
        worker = match.group(1) if match else "0"
        totals[worker] = totals.get(worker, 0.0) + float(value)
    return totals


@dataclass
class ProcessSample:
    """CPU seconds of each server process at one moment."""

    at: float
    "Monotonic time of the reading."
    cpu: dict[str, tuple[int, float]]
    "Label (``front``, ``0``, ``1``...) -> (pid, utime + stime seconds)."


class ServerProcess:
    """One ``python -m mcu`` process tree, from start to stop."""

    def __init__(
        self,
        workers: int,
        cores: str,
        work_dir: Path,
        admin_token: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workers = workers
        self.env = env or {}
        "More ``MCU_*`` settings for the server."
        self.cores = cores
        self.data_dir = work_dir / f"data-w{workers}-{time.monotonic_ns()}"
        self.log_path = self.data_dir / "mcu.log"
        self.admin_token = admin_token
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The front's pid (the only process when ``workers`` is 1), once launched."""
        return self.process.pid if self.process is not None else None

    def command(self) -> list[str]:
        """``taskset -c CORES python -m mcu --workers W ...``."""
        return [
            "taskset", "-c", self.cores, sys.executable, "-m", "mcu",
            "--workers", str(self.workers), "--host", HOST, "--port", str(self.port),
            "--media-address", HOST, "--data-dir", str(self.data_dir), "--log-level", "warning",
        ]  # fmt: skip

    def launch(self) -> None:
        """Start the process tree (in its own process group, ended with the benchmark)."""
        self.data_dir.mkdir(parents=True)
        env = os.environ | self.env | {"MCU_ADMIN_TOKEN": self.admin_token}
        with open(self.log_path, "wb") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                self.command(),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: one killpg ends every worker
                preexec_fn=_die_with_parent,
            )

    async def wait_ready(self, http: aiohttp.ClientSession) -> None:
        """Wait until ``/readyz`` answers 200 (bounded); raises with the log's tail otherwise."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(
                    f"{self.base_url}/readyz", timeout=aiohttp.ClientTimeout(total=2)
                ) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
        raise RuntimeError(
            f"the server was not ready within {START_TIMEOUT:g} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log, for error messages."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def processes(self) -> dict[str, int]:
        """Label -> pid: ``0`` alone for one process; ``front`` and each worker index otherwise."""
        assert self.process is not None
        front = self.process.pid
        if self.workers == 1:
            return {"0": front}
        found = {"front": front}
        for child in children(front):
            index = worker_index(child)
            if index is not None:
                found[index] = child
        return found

    def sample_cpu(self) -> ProcessSample:
        """Every server process's CPU time now (a process that vanished meanwhile is left out)."""
        cpu = {}
        for label, pid in self.processes().items():
            with contextlib.suppress(OSError, IndexError, ValueError):
                cpu[label] = (pid, cpu_seconds(pid))
        return ProcessSample(time.monotonic(), cpu)

    async def metrics(self, http: aiohttp.ClientSession) -> str | None:
        """The front's ``/metrics`` exposition, or None when it did not answer."""
        try:
            async with http.get(
                f"{self.base_url}/metrics", timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                if response.status != 200:
                    return None
                return await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return None

    def stop(self) -> None:
        """SIGTERM the front (it stops its workers), then SIGKILL the whole group if need be."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # workers left behind, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)


def cpu_percent(before: ProcessSample, after: ProcessSample) -> dict[str, float]:
    """Per process label, CPU over the interval in percent of one core (restarted ones left out)."""
    wall = after.at - before.at
    result = {}
    for label, (pid, cpu) in after.cpu.items():
        if label in before.cpu and before.cpu[label][0] == pid and wall > 0:
            result[label] = 100 * (cpu - before.cpu[label][1]) / wall
    return result
