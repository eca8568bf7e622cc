"""Starts the worker processes, restarts one that exits, and stops them all on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from mcu.app.cluster.peers import WorkerPeers, WorkerUnavailable
from mcu.app.config import Config
from mcu.contracts.cluster import MAX_SOCKET_PATH_BYTES, socket_dir, worker_socket

__all__ = ["Supervisor", "WorkerProcess", "WorkerStartError"]

logger = logging.getLogger(__name__)

START_TIMEOUT = 60.0
"Seconds a worker has from its start until its socket answers ``/healthz``."
STOP_TIMEOUT = 330.0
"Seconds workers have to finish after SIGTERM (they end rooms and finish composites)."
RESTART_BACKOFF_MIN = 0.5
RESTART_BACKOFF_MAX = 30.0
STABLE_SECONDS = 60.0
"A worker that ran this long before exiting is restarted after the shortest backoff again."


class WorkerStartError(Exception):
    """A worker could not be started; the message says which and why."""


@dataclass
class WorkerProcess:
    """One worker and what the supervisor knows about it."""

    index: int
    "The worker's index."
    process: asyncio.subprocess.Process | None = None
    "The running process (the latest one after restarts)."
    ready: bool = False
    "The current process answered ``/healthz`` since it started."
    restarts: int = 0
    "How often the worker was restarted after exiting unexpectedly."
    started: float = field(default_factory=time.monotonic)
    "Monotonic time the current process started."

    @property
    def pid(self) -> int | None:
        """The current process id, None when not running."""
        return self.process.pid if self.running and self.process is not None else None

    @property
    def running(self) -> bool:
        """Whether the current process has not exited."""
        return self.process is not None and self.process.returncode is None


class Supervisor:
    """Runs ``count`` workers as ``python -m mcu <argv> --workers N --worker-index i``."""

    def __init__(
        self,
        config: Config,
        argv: Sequence[str],
        count: int,
        peers: WorkerPeers,
        *,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.config = config
        self.argv = list(argv)
        self.count = count
        self.peers = peers
        self.start_timeout = start_timeout
        self.workers = [WorkerProcess(i) for i in range(count)]
        self.stopping = False
        self._watchers: list[asyncio.Task[None]] = []

    def command(self, index: int) -> list[str]:
        """The command line of worker ``index`` (later flags win, so these override argv)."""
        return [
            sys.executable,
            "-m",
            "mcu",
            *self.argv,
            "--workers",
            str(self.count),
            "--worker-index",
            str(index),
        ]

    def _check_sockets(self) -> None:
        for index in range(self.count):
            path = worker_socket(self.config.data_dir, index)
            if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
                raise WorkerStartError(
                    f"the worker socket path {path} is longer than {MAX_SOCKET_PATH_BYTES} "
                    "bytes; use a shorter data_dir"
                )
        directory = socket_dir(self.config.data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)

    async def _spawn(self, worker: WorkerProcess) -> None:
        worker.ready = False
        worker.started = time.monotonic()
        # A session of its own: a terminal's Ctrl-C reaches the front, which stops workers in
        # order, rather than every worker at once.
        worker.process = await asyncio.create_subprocess_exec(
            *self.command(worker.index), stdin=asyncio.subprocess.DEVNULL, start_new_session=True
        )
        logger.info("worker %d started (pid %d)", worker.index, worker.process.pid)

    async def _wait_ready(self, worker: WorkerProcess) -> None:
        deadline = time.monotonic() + self.start_timeout
        path = worker_socket(self.config.data_dir, worker.index)
        while True:
            process = worker.process
            assert process is not None
            if process.returncode is not None:
                raise WorkerStartError(
                    f"worker {worker.index} exited with code {process.returncode} while starting"
                )
            with contextlib.suppress(WorkerUnavailable):
                status, _ = await self.peers.request(worker.index, "GET", "/healthz", timeout=2.0)
                if status == 200:
                    worker.ready = True
                    return
            if time.monotonic() > deadline:
                raise WorkerStartError(
                    f"worker {worker.index} (pid {process.pid}) did not answer /healthz on "
                    f"{path} within {self.start_timeout:.0f} s"
                )
            await asyncio.sleep(0.1)

    async def start(self) -> None:
        """Start every worker and wait until each answers; raises :class:`WorkerStartError`."""
        self._check_sockets()
        # Worker 0 first: on a fresh data directory it creates the secrets and the databases'
        # tables, which concurrent first starts would race on.
        first, rest = self.workers[0], self.workers[1:]
        await self._spawn(first)
        await self._wait_ready(first)
        for worker in rest:
            await self._spawn(worker)
        await asyncio.gather(*(self._wait_ready(w) for w in rest))
        self._watchers = [asyncio.create_task(self._watch(w)) for w in self.workers]

    async def _watch(self, worker: WorkerProcess) -> None:
        failures = 0
        while not self.stopping:
            assert worker.process is not None
            code = await worker.process.wait()
            if self.stopping:
                return
            ran = time.monotonic() - worker.started
            failures = 0 if ran >= STABLE_SECONDS else failures + 1
            delay = min(RESTART_BACKOFF_MAX, RESTART_BACKOFF_MIN * 2 ** max(0, failures - 1))
            logger.error(
                "worker %d (pid %d) exited with code %s after %.0f s; restarting in %.1f s",
                worker.index,
                worker.process.pid,
                code,
                ran,
                delay,
            )
            await asyncio.sleep(delay)
            if self.stopping:
                return
            worker.restarts += 1
            await self._spawn(worker)
            try:
                await self._wait_ready(worker)
            except WorkerStartError as exc:
                logger.error("%s", exc)
                if worker.running:
                    worker.process.kill()
            else:
                logger.info("worker %d is back (pid %d)", worker.index, worker.process.pid)

    async def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM every worker and wait up to ``timeout`` s for all; stragglers get SIGKILL.

        Returns 0 when every worker exited by itself, 1 when one had to be killed.
        """
        self.stopping = True
        for task in self._watchers:
            task.cancel()
        running = [w for w in self.workers if w.running]
        for worker in running:
            assert worker.process is not None
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        if running:
            logger.info("waiting for %d workers to finish", len(running))
        waits = [asyncio.ensure_future(w.process.wait()) for w in running if w.process]
        if waits:
            await asyncio.wait(waits, timeout=timeout)
        status = 0
        for worker in self.workers:
            if worker.running:
                assert worker.process is not None
                logger.error("worker %d did not stop in %.0f s; killing it", worker.index, timeout)
                worker.process.kill()
                await worker.process.wait()
                status = 1
            elif worker.process is not None and worker.process.returncode not in (0, None):
                logger.warning(
                    "worker %d exited with code %s", worker.index, worker.process.returncode
                )
        await asyncio.gather(*self._watchers, return_exceptions=True)
        return status
