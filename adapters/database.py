"""Connections to PostgreSQL: SQLAlchemy's asyncio engine on psycopg 3, and plain psycopg 3
connections for the hottest reads."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from adapters.outages import unavailable_service

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

    def connection(
        self, wait_seconds: float | None = None
    ) -> contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        """A connection for the block, back in the pool afterwards; waiting for one at most
        `wait_seconds` (READ_CONNECT_TIMEOUT_SECONDS by default), then PoolTimeout."""
        opening = self._opening
        if (
            opening is not None
            and opening.done()
            and not opening.cancelled()
            and not opening.exception()
        ):
            # Once open, the pool's own checkout, without a second generator around it.
            return self._pool.connection(wait_seconds)
        return self._opened_connection(wait_seconds)

    @contextlib.asynccontextmanager
    async def _opened_connection(
        self, wait_seconds: float | None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._pool.open())
        # Shielded: a caller cancelled while the pool opens does not cancel the opening,
        # which every other caller waits on too.
        await asyncio.shield(self._opening)
        async with self._pool.connection(wait_seconds) as conn:
            yield conn

    async def close(self) -> None:
        """Close the connections, if any were opened."""
        if self._opening is not None:
            await asyncio.gather(self._opening, return_exceptions=True)
            await self._pool.close()


async def rows_by_id(
    conn: psycopg.AsyncConnection[Any], select_where_id: str, ids: list[str]
) -> list[dict[str, Any]]:
    """The rows of `select_where_id` (a SELECT ending in `WHERE id`) for the ids, each as a
    dict by column, as a prepared statement: `= %s` for one id, `= ANY(%s)` for several."""
    cursor = conn.cursor(row_factory=dict_row)
    if len(ids) == 1:
        await cursor.execute(f"{select_where_id} = %s", ids, prepare=True)
    else:
        await cursor.execute(f"{select_where_id} = ANY(%s)", [ids], prepare=True)
    return await cursor.fetchall()


Fetch = Callable[[psycopg.AsyncConnection[Any], list[str]], Awaitable[Mapping[str, Value]]]
"""A read of several keys in one statement: what it found, by key (a key absent if none)."""
Waiting = dict[str, list[asyncio.Future[Any]]]
"""The callers waiting for each key, in the order the keys were first asked for."""


class GroupedReads(Generic[Value]):
    """Reads by key that arrive together, sent as one statement on one connection.

    Group commit for reads. The first read starts a flusher, which sends its key at once;
    every key asked for while that statement runs queues for the next one, which reads them
    all together. Under concurrent requests one checkout and one round trip then serve many
    of them, where each would pay its own, and the pace of a lone read is unchanged. A key
    is only read by a statement that starts after it was asked for, so a read sees every
    write committed before it was asked (what `consistentWith` waits for).

    Each caller gets its own answer. A caller cancelled while it waits leaves the group; a
    key whose callers have all left is not read. The statement runs once more on another
    connection if its connection had died (one the pool kept across a database restart). A
    database outage is then every waiting caller's, as each would have met it; any other
    failure of a group of several keys reads each key alone, so that no caller's key fails
    another's read. A caller waits for a connection for at most READ_CONNECT_TIMEOUT_SECONDS
    from when it asked, as a read of its own would. If the flusher stops (the API stopping),
    every caller still waiting is cancelled.
    """

    def __init__(self, pool: ReadPool, fetch: Fetch[Value]) -> None:
        self._pool = pool
        self._fetch = fetch
        self._queued: Waiting = {}
        self._queued_since = 0.0
        self._reading: Waiting = {}
        self._flusher: asyncio.Task[None] | None = None

    async def get(self, key: str) -> Value | None:
        """What the read finds for the key, or None."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Value | None] = loop.create_future()
        if not self._queued:
            self._queued_since = loop.time()
        self._queued.setdefault(key, []).append(answer)
        if self._flusher is None:
            # A context of its own: the flusher outlives the request that started it.
            self._flusher = loop.create_task(self._flush(), context=contextvars.Context())
        return await answer

    async def _flush(self) -> None:
        try:
            while self._queued:
                self._reading, self._queued = self._queued, {}
                await self._read(self._reading, self._queued_since)
                self._reading = {}
        except BaseException as error:
            # Stopped (cancelled), or a bug of ours: no caller is left waiting.
            for waiting in (self._reading, self._queued):
                for answers in waiting.values():
                    if isinstance(error, Exception):
                        _fail(answers, error)
                    else:
                        for answer in answers:
                            answer.cancel()
            self._reading, self._queued = {}, {}
            raise
        finally:
            self._flusher = None

    async def _read(self, waiting: Waiting, asked_at: float) -> None:
        keys = [key for key, answers in waiting.items() if not all(a.done() for a in answers)]
        if not keys:
            return
        try:
            found = await self._fetched(keys, asked_at)
        except Exception as error:
            if len(keys) > 1 and unavailable_service(error) is None:
                await self._read_alone(keys, waiting, asked_at)
            else:
                for key in keys:
                    _fail(waiting[key], error)
            return
        for key in keys:
            _answer(waiting[key], found.get(key))

    async def _read_alone(self, keys: list[str], waiting: Waiting, asked_at: float) -> None:
        """Each key in a statement of its own; an outage on the way is every other's too."""
        for index, key in enumerate(keys):
            try:
                found = await self._fetched([key], asked_at)
            except Exception as error:
                _fail(waiting[key], error)
                if unavailable_service(error) is not None:
                    for rest in keys[index + 1 :]:
                        _fail(waiting[rest], error)
                    return
            else:
                _answer(waiting[key], found.get(key))

    async def _fetched(self, keys: list[str], asked_at: float) -> Mapping[str, Value]:
        """The statement's rows, run once more on another connection if its connection
        died under it."""
        for last in (False, True):
            waited = asyncio.get_running_loop().time() - asked_at
            async with self._pool.connection(
                max(READ_CONNECT_TIMEOUT_SECONDS - waited, 0.001)
            ) as conn:
                try:
                    return await self._fetch(conn, keys)
                except psycopg.OperationalError:
                    if last or not conn.broken:
                        raise
        raise AssertionError("unreachable")


def _answer(answers: list[asyncio.Future[Any]], value: object) -> None:
    for answer in answers:
        if not answer.done():
            answer.set_result(value)


def _fail(answers: list[asyncio.Future[Any]], error: Exception) -> None:
    for answer in answers:
        if not answer.done():
            answer.set_exception(error)
