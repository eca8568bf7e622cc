"""Several processes behind one address: a front process and N worker processes.

With ``workers`` > 1 the ``mcu`` command runs :mod:`mcu.app.cluster.front` on the public port and
starts N workers (:mod:`mcu.app.cluster.supervisor`). Worker ``i`` serves the whole application on
the Unix socket ``<data_dir>/run/worker-<i>.sock`` (:mod:`mcu.app.cluster.worker`); the front routes
each room to its home worker (:mod:`mcu.app.cluster.directory`) and workers talk to each other over
the same sockets (:mod:`mcu.app.cluster.peers`).
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "HOME_WORKER_HEADER",
    "MAX_SOCKET_PATH_BYTES",
    "ROOM_EXISTS_PATH",
    "socket_dir",
    "worker_socket",
]

HOME_WORKER_HEADER = "X-Mcu-Home-Worker"
"Request header the front adds: the index of the worker that is home to the request's room."

ROOM_EXISTS_PATH = "/internal/rooms/{room}"
"""A worker's ``GET`` that answers ``{"exists": bool}`` for a room id (percent-encoded): the front
gives a room a home only once it exists."""

MAX_SOCKET_PATH_BYTES = 107
"Longest Unix socket path Linux accepts (``sun_path`` holds 108 bytes with the terminator)."


def socket_dir(data_dir: Path) -> Path:
    """Where the workers' sockets live (mode 0700: only this user reaches the workers)."""
    return data_dir / "run"


def worker_socket(data_dir: Path, index: int) -> Path:
    """The Unix socket worker ``index`` serves on."""
    return socket_dir(data_dir) / f"worker-{index}.sock"
