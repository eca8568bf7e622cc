"""Runs the real server (``python -m mcu``) in a subprocess on loopback for tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(root: int) -> set[int]:
    """Every living descendant of process ``root`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                stat = file.read()
        except OSError:
            continue  # gone meanwhile
        # The command name is in parentheses and may hold spaces: the ppid follows its end.
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class ServerProcess:
    """A running server and an admin client for it."""

    def __init__(
        self,
        data_dir: Path,
        extra_args: list[str] | None = None,
        admin_token: str | None = None,
        workers: int = 1,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        media_addresses: list[str] | None = None,
        front: bool = False,
    ) -> None:
        """``host`` is the HTTP listening address (0.0.0.0 also serves links made by
        tests/support/impair.py; the URLs here stay on loopback); ``media_addresses`` the ICE
        addresses, loopback by default, ``[]`` for every interface's; ``front``: a front process
        runs even with one worker (a node of a cluster), so it takes longer to start."""
        self.port = free_port()
        self.host = host
        self.media_addresses = ["127.0.0.1"] if media_addresses is None else media_addresses
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.admin_token = admin_token or secrets.token_urlsafe(24)
        self.data_dir = data_dir
        self.extra_args = extra_args or []
        self.workers = workers
        self.front = front or workers > 1
        self.env = env or {}
        self.process: asyncio.subprocess.Process | None = None
        self.log_path = data_dir / "server.log"
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: ASYNC230 - tiny, once per test
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mcu",
            "--host", self.host, "--port", str(self.port),
            "--data-dir", str(self.data_dir),
            *(f"--media-address={address}" for address in self.media_addresses),
            "--workers", str(self.workers),
            *self.extra_args,
            env=os.environ | {"MCU_ADMIN_TOKEN": self.admin_token} | self.env,
            stdout=log, stderr=log,
        )  # fmt: skip
        log.close()
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        # Workers import the media stack in parallel on a shared machine: give them longer.
        for _ in range(600 if self.front else 100):
            if self.process.returncode is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            try:
                async with self._session.get(self.base_url + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    async def create_room(
        self, room_id: str, password: str, title: str = "Consultation", **fields: Any
    ) -> None:
        """A room through the admin API; ``fields`` are further room fields (kind, ...)."""
        body = {"id": room_id, "title": title, "password": password} | fields
        async with self.http.post(self.base_url + "/api/rooms", json=body) as r:
            assert r.status == 201, await r.text()

    async def invite(self, room_id: str, role: str = "participant") -> str:
        async with self.http.post(
            self.base_url + f"/api/rooms/{room_id}/invites", json={"role": role}
        ) as r:
            assert r.status == 201, await r.text()
            url: str = (await r.json())["url"]
            return url

    async def metric(self, name: str) -> float:
        async with self.http.get(self.base_url + "/metrics") as r:
            text = await r.text()
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(match.group(1)) if match else 0.0

    async def decoded_frames(self) -> int:
        return int(await self.metric("mcu_decoded_frames_total"))

    async def kill(self) -> None:
        """SIGKILL: no chance to finish anything (a power cut, the OOM killer)."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()
        if self._session is not None:
            await self._session.close()

    async def kill_every_process(self) -> None:
        """SIGKILL every process of the server at once: the front, its workers (each in a
        session of its own, so a signal to the front's group misses them) and their children
        (the composite renderer). Each is stopped first, so none sees another die and reacts
        (a worker ending its rooms cleanly, the front restarting a worker)."""
        assert self.process is not None
        root = self.process.pid
        stopped: set[int] = set()
        for _ in range(20):  # until no new descendant appears (bounded)
            tree = {root} | _descendants(root)
            fresh = tree - stopped
            if not fresh:
                break
            for pid in fresh:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            stopped |= fresh
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await self.process.wait()
        if self._session is not None:
            await self._session.close()

    async def get_json(self, path: str) -> Any:
        async with self.http.get(self.base_url + path) as r:
            assert r.status == 200, (path, r.status, await r.text())
            return await r.json()

    async def download(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        async with self.http.get(self.base_url + path, headers=headers or {}) as r:
            return r.status, await r.read()

    async def stop(self) -> int | None:
        if self._session is not None:
            await self._session.close()
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode if self.process else None
