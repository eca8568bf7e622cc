"""Objects the server application shares with its handlers, under typed aiohttp keys."""

from __future__ import annotations

from aiohttp import web

from mcu.signaling.rooms.session import Rooms
from mcu.slides.sandbox import Sandbox

ROOMS = web.AppKey("rooms", Rooms)
"""This process's live rooms."""

SANDBOX = web.AppKey("sandbox", Sandbox)
"""The processes that validate and render uploaded documents."""
