"""The Postgres event and snapshot stores keep the ports' contract."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.snapshots import PostgresSnapshotStore
from tests.event_store_contract import EventStoreContract, SnapshotStoreContract


@pytest.fixture(scope="session")
def snapshots(engine: AsyncEngine) -> PostgresSnapshotStore:
    return PostgresSnapshotStore(engine)


class TestPostgresEventStore(EventStoreContract):
    """Runs on the session's `store` fixture, the Postgres event store."""


class TestPostgresSnapshotStore(SnapshotStoreContract):
    pass
