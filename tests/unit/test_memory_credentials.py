"""The in-memory credentials keep the port's contract."""

from __future__ import annotations

import pytest

from adapters.memory_credentials import InMemoryCredentials
from adapters.memory_event_store import InMemoryEventStore
from tests.credentials_contract import CredentialsContract


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def credentials(store: InMemoryEventStore) -> InMemoryCredentials:
    return InMemoryCredentials(store)


class TestInMemoryCredentials(CredentialsContract):
    pass
