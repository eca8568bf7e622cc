"""The join page's server side: ``/r/{room}`` serves the browser client.

The page's form never submits natively; should a browser submit it anyway (an old cached page),
a room password in the query is redirected away rather than served back, and a form ``POST``
comes back as the page. docs/api.md ("The room page") is the reference.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import unquote_plus

from aiohttp import web

__all__ = ["SECRET_QUERY_FIELDS", "setup_join_page"]

logger = logging.getLogger(__name__)

SECRET_QUERY_FIELDS = frozenset({"password"})
"""Query fields never served back: what a native submission of the join form would add."""


def _without_secrets(raw_query: str) -> tuple[str, bool]:
    """``raw_query`` without its secret fields, kept byte for byte otherwise (``?view`` stays
    ``?view``), and whether anything was taken out."""
    kept = []
    removed = False
    for part in raw_query.split("&"):
        name = unquote_plus(part.partition("=")[0]).strip().lower()
        if name in SECRET_QUERY_FIELDS:
            removed = True
        elif part:
            kept.append(part)
    return "&".join(kept), removed


def _page_url(request: web.Request, query: str) -> str:
    return request.rel_url.raw_path + (f"?{query}" if query else "")


class _JoinPage:
    """Route handlers sharing the page file."""

    def __init__(self, page: Path) -> None:
        self.page = page

    async def get_page(self, request: web.Request) -> web.StreamResponse:
        """``GET /r/{room}``: the browser client; a query carrying a password is redirected to
        the same address without it (the redirect, not the page, is what history keeps)."""
        query, removed = _without_secrets(request.rel_url.raw_query_string)
        if removed:
            logger.info("room page: password taken out of the address of %s", request.path)
            return self._back_to_page(request, query)
        return web.FileResponse(self.page, headers={"Cache-Control": "no-cache"})

    async def post_page(self, request: web.Request) -> web.StreamResponse:
        """``POST /r/{room}``: a join form submitted without the page's scripts. Its body (the
        password) is not read; the person gets the page again, invitation and all."""
        query, _ = _without_secrets(request.rel_url.raw_query_string)
        return self._back_to_page(request, query)

    def _back_to_page(self, request: web.Request, query: str) -> web.Response:
        return web.Response(
            status=303,
            headers={
                "Location": _page_url(request, query),
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
            },
        )


def setup_join_page(app: web.Application, *, page: Path) -> None:
    """Add ``/r/{room}`` (serving ``page``) to ``app``."""
    handlers = _JoinPage(page)
    app.router.add_get("/r/{room}", handlers.get_page)
    app.router.add_post("/r/{room}", handlers.post_page)
