"""Shared fixtures: a real server subprocess on loopback, and aiortc clients that use loopback."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest

from mcu.sfu import ice
from tests.support.server import ServerProcess

# Test clients gather ICE candidates on loopback only (aioice skips it by default).
ice.install(ice.IcePolicy(addresses=("127.0.0.1",)))

REQUIRE_ALL = "MCU_TESTS_REQUIRE_ALL"
"""Set (by .ci/run, which installs everything the suite needs) to make any skipped test fail:
there a skip means a missing dependency, and a skipped test proves nothing."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get(REQUIRE_ALL) == "1":
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, but {REQUIRE_ALL}=1 requires every test to run: {reason}"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(tmp_path / "server")
    await process.start()
    try:
        yield process
    finally:
        code = await process.stop()
        # A clean SIGTERM shutdown exits 0; anything else is a server bug worth seeing.
        assert code == 0, process.log()[-4000:]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """The real server as a front process and two workers."""
    process = ServerProcess(tmp_path / "srv", workers=2)
    try:
        await process.start()
        yield process
    finally:
        code = await process.stop()
        # SIGTERM stops the front and both workers; a clean stop exits 0.
        assert code == 0, process.log()[-4000:]
