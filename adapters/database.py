"""Connections to PostgreSQL: SQLAlchemy's asyncio engine on psycopg 3, and plain psycopg 3
connections for the hottest reads."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

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
