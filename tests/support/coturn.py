"""A real coturn TURN server (Debian package ``coturn``, ``turnserver``) started by a test.

It checks time-limited credentials (``use-auth-secret`` with a secret generated here), listens
on UDP and TCP on one port of the given addresses, and relays from one of them. Everything it
writes (configuration, log, pid file, user database) stays in the test's directory; it runs in
the foreground as the test's child and is killed when the test ends:

    async with Coturn(tmp_path) as turn:       # 127.0.0.1, a free port
        server = ServerProcess(..., extra_args=[f"--turn-url={turn.url('udp')}"],
                               env={"MCU_TURN_SECRET": turn.secret})

Loopback peers are allowed (``allow-loopback-peers``) because the media server under test
listens on loopback; a production relay must never allow them (ops/coturn/turnserver.conf).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
from pathlib import Path
from types import TracebackType

from tests.support.server import free_port

TURNSERVER = "turnserver"
REALM = "mcu.test"
START_TIMEOUT_S = 15.0


def coturn_available() -> str | None:
    """None when a TURN server can be started here, else why not (for a test's skip reason)."""
    if shutil.which(TURNSERVER) is None:
        return "coturn is not installed (apt-get install coturn)"
    return None


class Coturn:
    """One ``turnserver`` process for one test."""

    def __init__(
        self,
        directory: Path,
        listening: tuple[str, ...] = ("127.0.0.1",),
        relay: str = "127.0.0.1",
    ) -> None:
        """``listening``: the addresses clients reach it on; ``relay``: the address it relays
        from (one the media server can answer)."""
        self.directory = directory
        self.listening = listening
        self.relay = relay
        self.port = free_port()
        self.secret = secrets.token_urlsafe(24)
        self.log_path = directory / "turnserver.log"
        self._process: asyncio.subprocess.Process | None = None

    def url(self, transport: str, host: str | None = None) -> str:
        """Its ``turn:`` URL over ``transport`` ("udp" or "tcp") at ``host`` (the first
        listening address by default)."""
        return f"turn:{host or self.listening[0]}:{self.port}?transport={transport}"

    def config(self) -> str:
        """The ``turnserver.conf`` it runs with."""
        lines = [
            *(f"listening-ip={address}" for address in self.listening),
            f"listening-port={self.port}",
            f"relay-ip={self.relay}",
            "use-auth-secret",
            f"static-auth-secret={self.secret}",
            f"realm={REALM}",
            "fingerprint",
            # The media server under test is on loopback. Never in production.
            "allow-loopback-peers",
            "no-cli",
            "no-tls",
            "no-dtls",
            "no-stdout-log",
            "simple-log",
            "verbose",  # one line per allocation: which user name it was made for
            f"log-file={self.log_path}",
            f"pidfile={self.directory / 'turnserver.pid'}",
            f"userdb={self.directory / 'turndb'}",
        ]
        return "\n".join(lines) + "\n"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / "turnserver.conf"
        path.write_text(self.config(), encoding="utf-8")
        self._process = await asyncio.create_subprocess_exec(
            TURNSERVER, "-c", str(path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        # Ready once its TCP listener accepts (the UDP one opens in the same start-up step).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while True:
            if self._process.returncode is not None:
                raise RuntimeError(f"turnserver exited: {self.log()[-2000:]}")
            try:
                _, writer = await asyncio.open_connection(self.listening[0], self.port)
            except OSError:
                if loop.time() > deadline:
                    raise RuntimeError(f"turnserver did not start: {self.log()[-2000:]}") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.kill()
        await process.wait()

    async def __aenter__(self) -> Coturn:
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
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
