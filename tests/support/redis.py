"""Real ``redis-server`` and ``redis-sentinel`` processes (Debian packages of those names)
started by a test, each in the test's directory, on loopback, killed when the test ends.

    async with RedisServer(tmp_path / "primary") as primary:
        url = primary.url()                      # redis://127.0.0.1:PORT/0
    async with RedisServer(tmp_path / "replica", replica_of=primary) as replica, \
            RedisSentinel(tmp_path / "s1", primary, service="mcu") as sentinel:
        url = sentinel_url([sentinel], "mcu")    # redis+sentinel://127.0.0.1:PORT/mcu/0

Nothing is persisted (no RDB, no AOF): the data lives as long as the test. ``kill()`` sends
SIGKILL, as a crashed machine would. :class:`TwoSites` is the shape a province runs: a primary
and one Sentinel in the first data centre, the replica and two Sentinels in the second.
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
    declare it down (``down_after_ms``, 1 s) so a failover test takes seconds."""

    program = REDIS_SENTINEL

    def __init__(
        self,
        directory: Path,
        primary: RedisServer,
        service: str = "mcu",
        quorum: int = 1,
        down_after_ms: int = 1000,
    ) -> None:
        super().__init__(directory)
        self.primary = primary
        self.service = service
        self.quorum = quorum
        self.down_after_ms = down_after_ms

    def config(self) -> list[str]:
        return [
            *super().config(),
            f"sentinel monitor {self.service} {HOST} {self.primary.port} {self.quorum}",
            f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}",
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


class TwoSites:
    """Redis for two data centres: site 1 holds the primary and Sentinel 1, site 2 the replica
    and Sentinels 2 and 3. The quorum is 2, so the Sentinels of site 2 alone can still agree
    that the primary is down and elect one of them to promote the replica (a majority of the
    three), while a lone Sentinel cut off in site 1 can promote nothing. ``down_after_ms`` is
    how long the Sentinels wait before they call the primary down.

        async with TwoSites(tmp_path) as sites:
            url = sites.url()             # redis+sentinel:// naming all three
            sites.kill_site_1()           # primary and Sentinel 1, SIGKILL
            await sites.wait_promoted()   # the replica's port, once Sentinel has promoted it
    """

    SERVICE = "mcu"

    def __init__(self, directory: Path, down_after_ms: int = 1000) -> None:
        self.primary = RedisServer(directory / "site1-primary")
        self.replica = RedisServer(directory / "site2-replica", replica_of=self.primary)
        self.sentinels = [
            RedisSentinel(
                directory / f"site{site}-sentinel{n}",
                self.primary,
                quorum=2,
                down_after_ms=down_after_ms,
            )
            for n, site in ((1, 1), (2, 2), (3, 2))
        ]

    def url(self) -> str:
        """The URL the nodes are given (every Sentinel, so either site's answer is enough)."""
        return sentinel_url(self.sentinels, self.SERVICE)

    async def start(self) -> None:
        """Start all five and wait until every Sentinel knows the replica and the other two
        (they learn both from the primary within seconds; a failover needs them)."""
        await self.primary.start()
        await self.replica.start()
        for sentinel in self.sentinels:
            await sentinel.start()
        deadline = time.monotonic() + START_TIMEOUT_S * 2
        while not await self._acquainted():
            if time.monotonic() > deadline:
                raise RuntimeError("the Sentinels did not find the replica and each other")
            await asyncio.sleep(0.2)

    async def _acquainted(self) -> bool:
        for sentinel in self.sentinels:
            state = await _sentinel_fields(sentinel, "SENTINEL", "MASTER", self.SERVICE)
            if state.get("num-slaves") != "1" or state.get("num-other-sentinels") != "2":
                return False
        replication = await _info_fields(self.replica, "replication")
        return replication.get("master_link_status") == "up"

    def kill_primary(self) -> None:
        """SIGKILL the primary alone."""
        self.primary.kill()

    def kill_site_1(self) -> None:
        """SIGKILL the primary and Sentinel 1 together: the first data centre is gone."""
        self.primary.kill()
        self.sentinels[0].kill()

    async def primary_port(self) -> int | None:
        """The primary's port as a surviving Sentinel names it (None when none answers)."""
        for sentinel in self.sentinels[1:]:
            with contextlib.suppress(OSError, TimeoutError):
                words = await _sentinel_words(
                    sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.SERVICE
                )
                if len(words) == 2 and words[1].isdigit():
                    return int(words[1])
        return None

    async def wait_promoted(self, timeout: float = 30.0) -> None:
        """Until the Sentinels name the replica as the primary and it says it is one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.primary_port() == self.replica.port:
                with contextlib.suppress(OSError, TimeoutError):
                    role = await _info_fields(self.replica, "replication")
                    if role.get("role") == "master":
                        return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"Sentinel did not promote the replica within {timeout} s")

    async def stop(self) -> None:
        for process in (*self.sentinels, self.replica, self.primary):
            await process.stop()

    async def __aenter__(self) -> TwoSites:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def _sentinel_words(process: _RedisProcess, *words: str) -> list[str]:
    """The strings of a flat array reply (RESP2), read with a plain socket."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, process.port), 2.0)
    try:
        writer.write((" ".join(words) + "\r\n").encode())
        await writer.drain()
        header = (await asyncio.wait_for(reader.readline(), 2.0)).decode().rstrip("\r\n")
        if not header.startswith("*") or header == "*-1":
            return []
        items = []
        for _ in range(int(header[1:])):
            await asyncio.wait_for(reader.readline(), 2.0)  # $LENGTH
            items.append((await asyncio.wait_for(reader.readline(), 2.0)).decode().rstrip("\r\n"))
        return items
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _sentinel_fields(process: _RedisProcess, *words: str) -> dict[str, str]:
    with contextlib.suppress(OSError, TimeoutError):
        items = await _sentinel_words(process, *words)
        return dict(zip(items[0::2], items[1::2], strict=False))
    return {}


async def _info_fields(process: _RedisProcess, section: str) -> dict[str, str]:
    """``INFO section`` as a dict (a bulk string reply, read whole)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, process.port), 2.0)
    try:
        writer.write(f"INFO {section}\r\n".encode())
        await writer.drain()
        header = (await asyncio.wait_for(reader.readline(), 2.0)).decode()
        if not header.startswith("$"):
            return {}
        body = await asyncio.wait_for(reader.readexactly(int(header[1:]) + 2), 2.0)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    fields = {}
    for line in body.decode().splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value
    return fields
