"""Headless Chromium driven over the Chrome DevTools Protocol, for end-to-end tests.

One browser process per `Chromium` context, a fresh profile directory each time, fake camera and
microphone, and flags that keep it off the internet (every host name but loopback fails to
resolve, and any proxied request goes to a dead local port). Pages are driven through one
WebSocket to the browser endpoint using flattened target sessions:

    async with Chromium() as browser:
        page = await browser.open("http://127.0.0.1:8080/r/room?invite=...&name=Ann")
        state = await page.evaluate("window.mcu.state")
        stats = await page.evaluate("window.mcu.stats()")  # promises are awaited

The browser is killed (its whole process group) and the profile removed however the block ends.

A browser in another network namespace (behind an impaired link, tests/support/impair.py) is
started through a `launcher` prefix (`nsenter --net=... --`); its DevTools port would be on that
namespace's loopback, out of reach, so it is driven over `--remote-debugging-pipe` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_PATH = os.environ.get("MCU_CHROMIUM", "/usr/lib/chromium/chromium")

# Measured on this machine class (shared notes "real clients"): without
# --allow-loopback-in-peer-connection Chromium gathers no loopback candidate; mDNS candidates would
# hide the address from the server. Chromium honours only the last --disable-features switch, so
# all disabled features share one.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--mute-audio",
    "--disable-crash-reporter",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns,Translate,MediaRouter,OptimizationHints",
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
)


# Chromium reads DevTools commands from fd 3 and writes replies to fd 4 with
# --remote-debugging-pipe, each message ending in a NUL byte. Python has no fd mapping for a
# child, so a tiny trampoline moves the pipe ends there (via fds >= 10, so that neither end is
# overwritten by the other's move) and execs the browser.
_PIPE_TRAMPOLINE = (
    "import fcntl, os, sys\n"
    "high = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3]]\n"
    "for target, fd in zip((3, 4), high):\n"
    "    os.dup2(fd, target)\n"
    "    os.close(fd)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)

# Replies can be large (screenshots, big page results).
_PIPE_MESSAGE_LIMIT = 64 * 1024 * 1024


class ChromiumError(RuntimeError):
    """The browser failed to start, a CDP command failed, or page script threw."""


def chromium_available(path: str = CHROMIUM_PATH) -> bool:
    """Whether the Chromium binary exists and is executable."""
    return os.access(path, os.X_OK)


class Page:
    """One browser tab, attached with a flattened CDP session."""

    def __init__(self, browser: Chromium, target_id: str, session_id: str) -> None:
        self._browser = browser
        self.target_id = target_id
        self.session_id = session_id
        self.console: list[str] = []
        """Console messages and uncaught exceptions of the page, oldest first (for diagnostics)."""

    @property
    def browser(self) -> Chromium:
        """The browser this tab belongs to."""
        return self._browser

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a CDP command to this page's session and return its result."""
        return await self._browser.send(method, params, session_id=self.session_id)

    async def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """Evaluate a JS expression in the page, awaiting a returned promise; return its JSON value.

        Raises `ChromiumError` with the JS exception text if the expression throws or rejects.
        """
        params = {
            "expression": expression,
            "awaitPromise": True,
            "returnByValue": True,
            "userGesture": True,
        }
        result = await asyncio.wait_for(self.send("Runtime.evaluate", params), timeout)
        details = result.get("exceptionDetails")
        if details is not None:
            exception = details.get("exception", {})
            text = exception.get("description") or exception.get("value") or details.get("text")
            raise ChromiumError(f"page script failed: {text}")
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.5) -> Any:
        """Poll `expression` until it yields a truthy value and return it, or raise TimeoutError.

        Script errors while polling (e.g. the page has not defined its globals yet) count as falsy.
        """
        deadline = time.monotonic() + timeout
        last_error: str | None = None
        while True:
            try:
                value = await self.evaluate(expression, timeout=max(interval, 5.0))
                if value:
                    return value
            except ChromiumError as exc:
                last_error = str(exc)
            if time.monotonic() >= deadline:
                suffix = f" (last error: {last_error})" if last_error else ""
                raise TimeoutError(f"{expression!r} not truthy after {timeout} s{suffix}")
            await asyncio.sleep(interval)

    async def navigate(self, url: str) -> None:
        """Load `url` in this tab (returns once the navigation has started)."""
        await self.send("Page.navigate", {"url": url})

    async def close(self) -> None:
        """Close the tab."""
        await self._browser.send("Target.closeTarget", {"targetId": self.target_id})
        self._browser.pages.pop(self.session_id, None)


class Chromium:
    """A headless Chromium process with a throwaway profile, driven over CDP."""

    def __init__(
        self,
        path: str = CHROMIUM_PATH,
        extra_args: tuple[str, ...] = (),
        startup_timeout: float = 20.0,
        launcher: Sequence[str] = (),
        language: str | None = None,
    ) -> None:
        self.path = path
        # Debian's Chromium ships only en-US: `--lang` alone changes nothing, `--accept-lang`
        # sets both navigator.languages and the Accept-Language header (shared notes).
        languages = () if language is None else (f"--lang={language}", f"--accept-lang={language}")
        self.extra_args = (*extra_args, *languages)
        self.startup_timeout = startup_timeout
        self.launcher = tuple(launcher)
        "A command prefix the browser runs under (then driven over a pipe, not a port)."
        self.pages: dict[str, Page] = {}
        self._profile: Path | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pipe_in: asyncio.StreamReader | None = None
        self._pipe_out: asyncio.WriteTransport | None = None
        self._pipe_in_transport: asyncio.ReadTransport | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    async def __aenter__(self) -> Chromium:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Launch the browser and connect to its DevTools endpoint."""
        if not chromium_available(self.path):
            raise ChromiumError(f"no Chromium binary at {self.path}")
        self._profile = Path(tempfile.mkdtemp(prefix="mcu-chromium-"))
        args = [*FLAGS, f"--user-data-dir={self._profile}", *self.extra_args]
        if self.launcher:
            await self._start_with_pipe(args)
        else:
            await self._start_with_port(args)
        self._reader = asyncio.create_task(self._read_messages())

    async def _start_with_port(self, args: list[str]) -> None:
        args += ["--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1"]
        # Its own process group, so stop() reaches the renderer, GPU and utility children too.
        self._process = await asyncio.create_subprocess_exec(
            self.path,
            *args,
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        port, browser_path = await self._read_devtools_port()
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(
            f"ws://127.0.0.1:{port}{browser_path}", max_msg_size=0, autoping=True
        )

    async def _start_with_pipe(self, args: list[str]) -> None:
        commands_read, commands_write = os.pipe()
        replies_read, replies_write = os.pipe()
        try:
            # The launcher (nsenter) execs its command, so the pid is the browser's, its own
            # process group's leader as with a port.
            self._process = await asyncio.create_subprocess_exec(
                *self.launcher,
                sys.executable, "-c", _PIPE_TRAMPOLINE,
                str(commands_read), str(replies_write),
                self.path, *args, "--remote-debugging-pipe", "about:blank",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                pass_fds=(commands_read, replies_write),
            )  # fmt: skip
        except BaseException:
            os.close(commands_write)
            os.close(replies_read)
            raise
        finally:
            # The browser holds its own copies; ours would keep the pipes open after it died.
            os.close(commands_read)
            os.close(replies_write)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_PIPE_MESSAGE_LIMIT)
        self._pipe_in_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(replies_read, "rb")
        )
        self._pipe_in = reader
        transport, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(commands_write, "wb")
        )
        self._pipe_out = transport

    async def _read_devtools_port(self) -> tuple[int, str]:
        """Wait for Chromium to write `DevToolsActivePort` (port, then browser endpoint path)."""
        assert self._profile is not None and self._process is not None
        port_file = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.returncode is not None:
                raise ChromiumError(
                    f"Chromium exited at start with code {self._process.returncode}"
                )
            with contextlib.suppress(FileNotFoundError):
                lines = port_file.read_text().splitlines()
                if len(lines) >= 2 and lines[0].strip().isdigit():
                    return int(lines[0]), lines[1].strip()
            await asyncio.sleep(0.05)
        raise ChromiumError(f"Chromium wrote no {port_file.name} within {self.startup_timeout} s")

    async def _incoming(self) -> AsyncIterator[str]:
        """The browser's DevTools messages, in order, until the connection closes."""
        if self._ws is not None:
            async for message in self._ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    yield message.data
        elif self._pipe_in is not None:
            while True:
                try:
                    raw = await self._pipe_in.readuntil(b"\0")
                except asyncio.IncompleteReadError:
                    return  # the browser closed its end
                yield raw[:-1].decode()

    async def _read_messages(self) -> None:
        try:
            async for text in self._incoming():
                data = json.loads(text)
                if "id" in data:
                    future = self._pending.pop(data["id"], None)
                    if future is not None and not future.done():
                        future.set_result(data)
                else:
                    self._on_event(data)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ChromiumError("DevTools connection closed"))
            self._pending.clear()

    def _on_event(self, event: dict[str, Any]) -> None:
        page = self.pages.get(event.get("sessionId", ""))
        method = event.get("method")
        params = event.get("params", {})
        if page is not None and method == "Runtime.consoleAPICalled":
            parts = [_remote_object_text(arg) for arg in params.get("args", [])]
            page.console.append(f"console.{params.get('type')}: {' '.join(parts)}")
        elif page is not None and method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception", {})
            page.console.append(f"exception: {exception.get('description') or details.get('text')}")
        for listener in self._listeners:
            listener(event)

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call `listener` with every CDP event (a dict with method, params, maybe sessionId)."""
        self._listeners.append(listener)

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session_id: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Send one CDP command (to the browser, or to a page session) and return its result."""
        connected = self._ws is not None and not self._ws.closed
        piped = self._pipe_out is not None and not self._pipe_out.is_closing()
        if not (connected or piped):
            raise ChromiumError("not connected to Chromium")
        command_id = next(self._ids)
        message: dict[str, Any] = {"id": command_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        if self._ws is not None:
            await self._ws.send_str(json.dumps(message))
        elif self._pipe_out is not None:
            self._pipe_out.write(json.dumps(message).encode() + b"\0")
        try:
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(command_id, None)
        if "error" in reply:
            raise ChromiumError(f"{method} failed: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def open(self, url: str) -> Page:
        """Open `url` in a new tab and return the attached page (console capture enabled)."""
        page = await self.new_page()
        await page.navigate(url)
        return page

    async def new_page(self) -> Page:
        """A new blank tab, attached (console capture enabled), for setting up before navigating."""
        created = await self.send("Target.createTarget", {"url": "about:blank"})
        target_id = created["targetId"]
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target_id, "flatten": True}
        )
        page = Page(self, target_id, attached["sessionId"])
        self.pages[page.session_id] = page
        await page.send("Runtime.enable")
        await page.send("Page.enable")
        return page

    async def stop(self) -> None:
        """Close the connection, kill the browser's process group and delete the profile."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
            self._ws = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._pipe_out is not None:
            self._pipe_out.close()
            self._pipe_out = None
        if self._pipe_in_transport is not None:
            self._pipe_in_transport.close()
            self._pipe_in_transport = None
        self._pipe_in = None
        if self._process is not None:
            await _kill_process_group(self._process)
            self._process = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None


async def _kill_process_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the browser's own process group, then SIGKILL it if it lingers."""
    pgid = process.pid  # start_new_session=True made the browser its group's leader
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        try:
            await asyncio.wait_for(process.wait(), grace)
            break
        except TimeoutError:
            continue
    # Children may outlive the leader briefly; make sure none of the group is left.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


class HeldRequests:
    """A page's requests matching a URL pattern, held back until released: a slow link that has
    not delivered them yet. Start it before navigating::

        scripts = HeldRequests(page, "*/static/app.js")
        await scripts.start()
        await page.navigate(url)
        await scripts.wait_held()
        ...  # the page without its scripts
        await scripts.release()  # what was held goes out, later matches go straight through
    """

    def __init__(self, page: Page, url_pattern: str) -> None:
        self.page = page
        self.url_pattern = url_pattern
        self.held: list[str] = []
        "Request ids paused and not yet released."
        self.released = False
        self._tasks: set[asyncio.Task[dict[str, Any]]] = set()

    async def start(self) -> None:
        """Begin holding matching requests of the page."""
        self.page.browser.add_listener(self._on_event)
        pattern = {"urlPattern": self.url_pattern, "requestStage": "Request"}
        await self.page.send("Fetch.enable", {"patterns": [pattern]})

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("sessionId") != self.page.session_id:
            return
        if event.get("method") != "Fetch.requestPaused":
            return
        request_id = event["params"]["requestId"]
        if self.released:
            self._continue(request_id)
        else:
            self.held.append(request_id)

    def _continue(self, request_id: str) -> None:
        task = asyncio.create_task(
            self.page.send("Fetch.continueRequest", {"requestId": request_id})
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_held(self, timeout: float = 10.0) -> None:
        """Wait until at least one matching request is being held."""
        deadline = time.monotonic() + timeout
        while not self.held:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no request matching {self.url_pattern!r} in {timeout} s")
            await asyncio.sleep(0.05)

    async def release(self) -> None:
        """Let every held request go out, and every later one straight through."""
        self.released = True
        held, self.held = self.held, []
        for request_id in held:
            await self.page.send("Fetch.continueRequest", {"requestId": request_id})


async def record_requests(page: Page) -> list[str]:
    """The URLs of every request the page sends from now on, in order (a live list)."""
    urls: list[str] = []

    def on_event(event: dict[str, Any]) -> None:
        if event.get("sessionId") == page.session_id and (
            event.get("method") == "Network.requestWillBeSent"
        ):
            urls.append(event["params"]["request"]["url"])

    page.browser.add_listener(on_event)
    await page.send("Network.enable")
    return urls


def _remote_object_text(obj: dict[str, Any]) -> str:
    if "value" in obj:
        value = obj["value"]
        return value if isinstance(value, str) else json.dumps(value)
    return str(obj.get("description") or obj.get("type"))
