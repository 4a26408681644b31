"""At most one instance of each follower at work: a session-level advisory lock in Postgres.

Temporal runs an activity at least once: after a heartbeat timeout it starts another attempt
while the first may still run on a worker that lost touch, and a follower moved between task
queues may for a moment run on both. So each follower holds a lock named after it, on a
connection of its own, for as long as it works. Postgres releases the lock when that
connection ends: when the holder closes it, when its process dies, and when the holder stops
using it for longer than the session's idle timeout (a frozen process, a network split),
which the holder's regular checks keep from happening while it lives.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

import psycopg

from adapters.database import libpq_url

FENCE_LOCKS = 0x5A6C_F0CE
"""The first key of every fence's two-key advisory lock: a key space of the fences' own (the
one-key advisory locks of `adapters.pattern_windows` never meet it)."""
IDLE_TIMEOUT_SECONDS = 10.0
"""How long Postgres keeps the lock of a holder that stopped checking it."""
CHECK_TIMEOUT_SECONDS = 5.0
"""A check slower than this counts as a lost fence: the holder stops before the idle timeout
could hand the lock to another instance."""

_TRY_HOLD = "SELECT pg_try_advisory_lock(%s, hashtext(%s))"


def fence_application_name(name: str) -> str:
    """How the connection holding follower `name`'s fence shows in pg_stat_activity."""
    return f"sagaline fence {name}"[:63]


class FenceLost(RuntimeError):
    """The fence's connection ended or stopped answering: another instance may hold it now."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the fence of follower {name} was lost")


CONNECT_TIMEOUT_SECONDS = 5
"""A fence's connection that does not open within this fails, and its activity retries."""


class FollowerFence:
    """The advisory lock of one follower name, on a connection opened for it."""

    def __init__(
        self, database_url: str, name: str, idle_timeout_seconds: float = IDLE_TIMEOUT_SECONDS
    ) -> None:
        self._url = libpq_url(database_url)
        self.name = name
        self._idle_timeout_ms = round(idle_timeout_seconds * 1000)
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def __aenter__(self) -> FollowerFence:
        conn = await psycopg.AsyncConnection.connect(
            self._url,
            autocommit=True,
            application_name=fence_application_name(self.name),
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
        )
        try:
            await conn.execute(
                "SELECT set_config('idle_session_timeout', %s, false)",
                (str(self._idle_timeout_ms),),
            )
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def try_hold(self) -> bool:
        """Take the lock if no other session holds it; whether this one holds it now."""
        cursor = await self._connection().execute(_TRY_HOLD, (FENCE_LOCKS, self.name))
        row = await cursor.fetchone()
        return bool(row and row[0])

    async def check(self) -> None:
        """Return if the connection holding the lock still answers; else FenceLost."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await self._connection().execute("SELECT 1")
        except (psycopg.Error, TimeoutError) as error:
            raise FenceLost(self.name) from error

    def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None:
            raise RuntimeError("FollowerFence is not entered")
        return self._conn
