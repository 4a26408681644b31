"""The in-memory event and snapshot stores keep the ports' contract."""

from __future__ import annotations

import pytest

from adapters.memory_event_store import InMemoryEventStore, InMemorySnapshotStore
from tests.event_store_contract import EventStoreContract, SnapshotStoreContract


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def snapshots() -> InMemorySnapshotStore:
    return InMemorySnapshotStore()


class TestInMemoryEventStore(EventStoreContract):
    pass


class TestInMemorySnapshotStore(SnapshotStoreContract):
    pass
