"""One SQLite database behind an asyncio interface: one connection on one worker thread.

Every call is queued to that thread, so statements are serialised without locks and the event
loop never waits on the disk. The room store and the recordings catalogue build on this.
"""

from __future__ import annotations

import asyncio
import enum
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

_T = TypeVar("_T")


class Unset(enum.Enum):
    """The type of ``UNSET``."""

    UNSET = enum.auto()


UNSET: Final = Unset.UNSET
"""Marks an update argument as not given, so that None can clear a field."""


class DatabaseError(Exception):
    """The database cannot be used (newer schema, not started, closed)."""


class SerialDatabase:
    """Base of a database used from one thread; subclasses set up the schema in ``_prepare``."""

    label = "database"
    "Used in error messages and the worker thread's name."
    error: type[DatabaseError] = DatabaseError
    "Raised when the database is used before start or after close."
    private = False
    "Restrict the file to its owner (mode 0600)."

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    async def start(self) -> None:
        """Open (creating if needed) the database and bring its schema up to date."""
        if self._executor is not None:
            raise self.error(f"{self.label} already started")
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=self.label.replace(" ", "-")
        )
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        """Close the database; it cannot be used afterwards."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        await asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
        executor.shutdown(wait=False)

    async def _run(self, job: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``job`` with the connection on the database's thread."""
        if self._executor is None:
            raise self.error(f"{self.label} is not started")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._with_connection, job)

    # Everything below runs on the database's thread.

    def _with_connection(self, job: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._connection is None:
            raise self.error(f"{self.label} is closed")
        return job(self._connection)

    def _migrate(self, db: sqlite3.Connection, steps: Sequence[Sequence[str]]) -> None:
        """Bring the schema to version ``len(steps)`` in one transaction: ``steps[i]`` holds the
        statements that take version ``i`` to ``i + 1``. A newer schema is refused."""
        with db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
            version = 0 if row is None or row[0] is None else int(row[0])
            if version > len(steps):
                raise self.error(
                    f"{self.label} schema version {version} is newer than this server "
                    f"understands ({len(steps)}); upgrade the server"
                )
            for number, statements in enumerate(steps[version:], start=version + 1):
                # execute, not executescript: the latter commits mid-transaction.
                for statement in statements:
                    db.execute(statement)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Create or migrate the schema (inside the worker thread, before first use)."""

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level="DEFERRED")
        try:
            db.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across application crashes in WAL mode and much faster.
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA busy_timeout = 5000")
            self._prepare(db)
        except BaseException:
            db.close()
            raise
        if self.private and os.name == "posix":
            self.path.chmod(0o600)
        self._connection = db

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
