"""Fixtures over the session's real Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.database import create_engine
from adapters.event_store import PostgresEventStore


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=20)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def store(engine: AsyncEngine) -> AsyncIterator[PostgresEventStore]:
    store = PostgresEventStore(engine)
    yield store
    await store.close()
