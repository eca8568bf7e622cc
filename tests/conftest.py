"""Shared fixtures: a real server subprocess on loopback, and aiortc clients that use loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcu import ice
from tests.support.server import ServerProcess

# Test clients gather ICE candidates on loopback only (aioice skips it by default).
ice.install(ice.IcePolicy(addresses=("127.0.0.1",)))


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
