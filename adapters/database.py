"""Connections to PostgreSQL: SQLAlchemy's asyncio engine on psycopg 3, and plain psycopg 3
connections for the hottest reads."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

Value = TypeVar("Value")

# How long a read waits for a free connection before it fails as an outage would.
READ_CONNECT_TIMEOUT_SECONDS = 10.0


def sqlalchemy_url(database_url: str) -> str:
    """The URL with the psycopg driver named, whatever driver the caller wrote."""
    url = make_url(database_url)
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(database_url: str) -> str:
    """The URL in the plain form libpq and psycopg.connect understand."""
    url = make_url(database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(database_url: str, pool_size: int = 10, autocommit: bool = False) -> AsyncEngine:
    """An async engine with a bounded pool.

    No pre-ping (it costs a round trip per checkout, on the append hot path): after a
    database restart the first statement on a stale connection fails, SQLAlchemy discards
    the whole pool, and the caller's retry (Temporal's, for activities) gets a fresh one.
    With `autocommit`, every statement is its own transaction: no BEGIN before a read and
    no ROLLBACK after it, not even the driver-level one the pool does on check-in (for
    processes that only read, like the API). Errors never quote the statement's parameters:
    they reach logs and Temporal failures, and a parameter may be a password hash.
    """
    return create_async_engine(
        sqlalchemy_url(database_url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        isolation_level="AUTOCOMMIT" if autocommit else "READ COMMITTED",
        skip_autocommit_rollback=autocommit,
        hide_parameters=True,
    )


async def driver_of(conn: AsyncConnection) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under an engine connection, for statements on the hot path
    sent as prepared statements inside the engine connection's transaction."""
    driver = (await conn.get_raw_connection()).driver_connection
    if not isinstance(driver, psycopg.AsyncConnection):
        raise TypeError(f"not a psycopg 3 connection: {type(driver).__name__}")
    return driver


class ReadPool:
    """Autocommit psycopg 3 connections for reads sent as prepared statements.

    For the reads that run on nearly every request: no engine checkout through a greenlet,
    no statement compiling, no result wrapping. Connections open on first use.
    """

    def __init__(self, database_url: str, size: int) -> None:
        self._pool = AsyncConnectionPool(
            libpq_url(database_url),
            min_size=1,
            max_size=size,
            open=False,
            timeout=READ_CONNECT_TIMEOUT_SECONDS,
            kwargs={"autocommit": True},
            name="sagaline-reads",
        )
        self._opening: asyncio.Future[None] | None = None

    def connection(self) -> contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        """A connection for the block, back in the pool afterwards."""
        opening = self._opening
        if (
            opening is not None
            and opening.done()
            and not opening.cancelled()
            and not opening.exception()
        ):
            # Once open, the pool's own checkout, without a second generator around it.
            return self._pool.connection()
        return self._opened_connection()

    @contextlib.asynccontextmanager
    async def _opened_connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._pool.open())
        await self._opening
        async with self._pool.connection() as conn:
            yield conn

    async def close(self) -> None:
        """Close the connections, if any were opened."""
        if self._opening is not None:
            await asyncio.gather(self._opening, return_exceptions=True)
            await self._pool.close()


Fetch = Callable[[psycopg.AsyncConnection[Any], list[str]], Awaitable[Mapping[str, Value]]]
"""A read of several keys in one statement: what it found, by key (a key absent if none)."""


class GroupedReads(Generic[Value]):
    """Reads by key that arrive together, sent as one statement on one connection.

    Group commit for reads: the first read starts a flusher; every key asked for while the
    flusher's statement runs waits for the next one, which reads them all at once. One
    checkout and one round trip then serve many requests (16 in flight ask in groups of
    several), and a read alone costs what it did: its own statement, at once.

    Each caller gets its own answer. A caller cancelled while it waits leaves the group
    without it. A failure of the connection (an outage) is every waiting caller's, as each
    would have met it; any other failure of a group of several keys reads each key alone,
    so that no caller's key can fail another caller's read.
    """

    def __init__(self, pool: ReadPool, fetch: Fetch[Value]) -> None:
        self._pool = pool
        self._fetch = fetch
        self._waiting: dict[str, list[asyncio.Future[Value | None]]] = {}
        self._flusher: asyncio.Task[None] | None = None

    async def get(self, key: str) -> Value | None:
        """What the read finds for the key, or None."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Value | None] = loop.create_future()
        self._waiting.setdefault(key, []).append(answer)
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        return await answer

    async def _flush(self) -> None:
        try:
            while self._waiting:
                waiting, self._waiting = self._waiting, {}
                await self._read(waiting)
        finally:
            self._flusher = None
            # Cancelled (the API stopping): nobody is left waiting for a flusher.
            for answers in self._waiting.values():
                for answer in answers:
                    answer.cancel()
            self._waiting = {}

    async def _read(self, waiting: dict[str, list[asyncio.Future[Value | None]]]) -> None:
        keys = [key for key, answers in waiting.items() if not all(a.done() for a in answers)]
        if not keys:
            return
        try:
            async with self._pool.connection() as conn:
                found = await self._fetch(conn, keys)
        except asyncio.CancelledError:
            for answers in waiting.values():
                for answer in answers:
                    answer.cancel()
            raise
        except Exception as error:
            if len(keys) > 1 and not isinstance(error, psycopg.OperationalError):
                for key in keys:
                    await self._read({key: waiting[key]})
                return
            for key in keys:
                _settle(waiting[key], error=error)
            return
        for key in keys:
            _settle(waiting[key], value=found.get(key))


def _settle(
    answers: list[asyncio.Future[Value | None]],
    value: Value | None = None,
    error: Exception | None = None,
) -> None:
    for answer in answers:
        if answer.done():
            continue
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(value)
