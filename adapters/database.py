"""Connections to PostgreSQL through SQLAlchemy's asyncio engine on psycopg 3."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


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
