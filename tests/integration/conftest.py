"""Fixtures over the session's real Postgres, and a broker of a test's own."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.database import create_engine
from adapters.event_store import PostgresEventStore
from runtime.embedded.broker import EmbeddedBroker
from runtime.ports import free_port


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


@pytest.fixture
async def own_broker(tmp_path: Path) -> AsyncIterator[EmbeddedBroker]:
    """A broker of this test alone, which it may stop, restart or freeze (thawed at the end)."""
    broker = EmbeddedBroker(tmp_path / "kafka", free_port())
    await broker.start()
    try:
        yield broker
    finally:
        if broker.returncode is None:
            os.kill(broker.pid, signal.SIGCONT)
        await broker.stop()
