"""The library's page for staff: ``GET /library`` and its files under ``/library/static/``.

The page is plain HTML and ES modules (``library/web/``, no build step); it shares only the
site's stylesheet (``/static/style.css``) with the room client.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

from aiohttp import web

__all__ = ["LIBRARY_WEB", "setup_library_page"]

LIBRARY_WEB: Final = Path(str(resources.files("mcu.library") / "web"))
"""The page's files as installed."""


async def _page(request: web.Request) -> web.FileResponse:
    # A POST is the sign-in form submitted before the script loaded: answer with the page and
    # never read the body (it holds the token).
    return web.FileResponse(LIBRARY_WEB / "library.html", headers={"Cache-Control": "no-cache"})


def setup_library_page(app: web.Application) -> None:
    """Serve the page and its files. Call before mounting the ``/library`` playback
    sub-application, which would otherwise answer these paths itself."""
    app.router.add_get("/library", _page)
    app.router.add_post("/library", _page)
    app.router.add_static("/library/static/", LIBRARY_WEB, show_index=False)
