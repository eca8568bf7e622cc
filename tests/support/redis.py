"""Real ``redis-server`` and ``redis-sentinel`` processes (Debian packages of those names)
started by a test, each in the test's directory, on loopback, killed when the test ends.

    async with RedisServer(tmp_path / "primary") as primary:
        url = primary.url()                      # redis://127.0.0.1:PORT/0
    async with RedisServer(tmp_path / "replica", replica_of=primary) as replica, \
            RedisSentinel(tmp_path / "s1", primary, service="mcu") as sentinel:
        url = sentinel_url([sentinel], "mcu")    # redis+sentinel://127.0.0.1:PORT/mcu/0

Nothing is persisted (no RDB, no AOF): the data lives as long as the test. ``kill()`` sends
SIGKILL, as a crashed machine would.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import time
from pathlib import Path
from types import TracebackType

from tests.support.server import free_port

REDIS_SERVER = "redis-server"
REDIS_SENTINEL = "redis-sentinel"
START_TIMEOUT_S = 10.0
HOST = "127.0.0.1"


def redis_available() -> str | None:
    """None when Redis and Sentinel can be started here, else why not (a skip reason)."""
    for program in (REDIS_SERVER, REDIS_SENTINEL):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install redis-server redis-sentinel)"
    return None


class _RedisProcess:
    program = REDIS_SERVER

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.log_path = directory / "redis.log"
        self._process: asyncio.subprocess.Process | None = None

    def config(self) -> list[str]:
        return [
            f"bind {HOST}",
            f"port {self.port}",
            f"dir {self.directory}",
            f"logfile {self.log_path}",
            "daemonize no",
            "protected-mode no",
        ]

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "redis.conf"
        conf.write_text("\n".join(self.config()) + "\n")
        self._process = await asyncio.create_subprocess_exec(
            self.program,
            str(conf),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process is not None and self._process.returncode is not None:
                break
            with contextlib.suppress(OSError):
                if await self.command("PING") == "+PONG":
                    return
            await asyncio.sleep(0.05)
        log = self.log_path.read_text() if self.log_path.exists() else ""
        raise RuntimeError(f"{self.program} on port {self.port} did not start:\n{log[-2000:]}")

    async def command(self, *words: str) -> str:
        """Send one inline command and return the first line of the answer (a plain socket,
        so a test can talk to the server without the client under test)."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), 2.0)
        try:
            writer.write((" ".join(words) + "\r\n").encode())
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 2.0)
            return line.decode().rstrip("\r\n")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self._process is None:
            return
        if self._process.returncode is None:
            self._process.send_signal(signal.SIGKILL)
        await self._process.wait()
        self._process = None

    async def __aenter__(self) -> _RedisProcess:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class RedisServer(_RedisProcess):
    """One ``redis-server``; a replica of ``replica_of`` when given."""

    def __init__(self, directory: Path, replica_of: RedisServer | None = None) -> None:
        super().__init__(directory)
        self.replica_of = replica_of

    def config(self) -> list[str]:
        lines = [*super().config(), 'save ""', "appendonly no"]
        if self.replica_of is not None:
            lines.append(f"replicaof {HOST} {self.replica_of.port}")
        return lines

    def url(self, db: int = 0) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    async def __aenter__(self) -> RedisServer:
        await self.start()
        return self


class RedisSentinel(_RedisProcess):
    """One ``redis-sentinel`` watching ``primary`` as ``service`` (quorum ``quorum``), quick to
    declare it down (1 s) so a failover test takes seconds."""

    program = REDIS_SENTINEL

    def __init__(
        self, directory: Path, primary: RedisServer, service: str = "mcu", quorum: int = 1
    ) -> None:
        super().__init__(directory)
        self.primary = primary
        self.service = service
        self.quorum = quorum

    def config(self) -> list[str]:
        return [
            *super().config(),
            f"sentinel monitor {self.service} {HOST} {self.primary.port} {self.quorum}",
            f"sentinel down-after-milliseconds {self.service} 1000",
            f"sentinel failover-timeout {self.service} 5000",
            f"sentinel parallel-syncs {self.service} 1",
        ]

    async def __aenter__(self) -> RedisSentinel:
        await self.start()
        return self


def sentinel_url(sentinels: list[RedisSentinel], service: str, db: int = 0) -> str:
    """The ``redis+sentinel://`` URL naming ``sentinels`` and ``service``."""
    hosts = ",".join(f"{HOST}:{sentinel.port}" for sentinel in sentinels)
    return f"redis+sentinel://{hosts}/{service}/{db}"
