"""With a metrics token, /metrics and /healthz's counts need it; liveness stays open."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.support.server import ServerProcess

TOKEN = "scrape-me-please-0123"


@pytest.mark.parametrize("workers", [1, 2])
async def test_metrics_token_guards_the_figures(tmp_path: Path, workers: int) -> None:
    server = ServerProcess(tmp_path / "srv", ["--metrics-token", TOKEN], workers=workers)
    await server.start()
    try:
        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.get(server.base_url + "/metrics") as r:
                assert r.status == 401, await r.text()
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
            async with anonymous.get(server.base_url + "/healthz") as r:
                assert r.status == 200
                assert await r.json() == {"status": "ok"}  # no room or participant counts
            async with anonymous.get(server.base_url + "/readyz") as r:
                assert r.status == 200
            scraper = {"Authorization": f"Bearer {TOKEN}"}
            async with anonymous.get(server.base_url + "/metrics", headers=scraper) as r:
                assert r.status == 200
                assert "mcu_rooms" in await r.text()
            async with anonymous.get(server.base_url + "/healthz", headers=scraper) as r:
                health = await r.json()
                assert {"rooms", "participants", "viewers"} <= health.keys(), health
            # The admin token is not the metrics token.
            async with anonymous.get(
                server.base_url + "/metrics",
                headers={"Authorization": f"Bearer {server.admin_token}"},
            ) as r:
                assert r.status == 401
    finally:
        assert await server.stop() == 0, server.log()[-3000:]
