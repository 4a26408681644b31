"""A worker running in the test process against the session's real Temporal and Postgres."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from adapters.database import create_engine
from adapters.event_store import PostgresEventStore
from adapters.temporal import connect
from domain.repository import Repository
from runtime.config import Settings
from runtime.followers import create_followers_worker
from runtime.worker import create_worker
from tests.workflows.bank import RefundBlocked, StepsHeld
from workflows.transfers import TransferSaga


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


@pytest.fixture(scope="session")
async def client(temporal_address: str) -> Client:
    return await connect(temporal_address, "default")


@pytest.fixture(scope="session")
def task_queue() -> str:
    return f"test-{uuid.uuid4()}"


@pytest.fixture(scope="session")
async def worker(
    settings: Settings,
    client: Client,
    engine: AsyncEngine,
    store: PostgresEventStore,
    task_queue: str,
) -> AsyncIterator[None]:
    worker_settings = settings.model_copy(update={"temporal_task_queue": task_queue})
    running = asyncio.create_task(create_worker(worker_settings, client, engine, store).run())
    yield
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


@pytest.fixture(scope="session")
def followers_queue() -> str:
    return f"test-followers-{uuid.uuid4()}"


@pytest.fixture(scope="session")
async def followers(
    settings: Settings,
    client: Client,
    engine: AsyncEngine,
    store: PostgresEventStore,
    followers_queue: str,
) -> AsyncIterator[None]:
    """The followers' worker on a queue of its own (the followers themselves not started)."""
    queue_settings = settings.model_copy(update={"temporal_followers_task_queue": followers_queue})
    async with create_followers_worker(queue_settings, client, engine, store):
        yield


@pytest.fixture
async def blocked_refunds_queue(client: Client, store: PostgresEventStore) -> AsyncIterator[str]:
    queue = f"blocked-refunds-{uuid.uuid4()}"
    activities = RefundBlocked(Repository(store))
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[TransferSaga],
        activities=activities.all(),
    )
    async with worker:
        yield queue


@pytest.fixture
async def held_steps_queue(client: Client, store: PostgresEventStore) -> AsyncIterator[str]:
    queue = f"held-steps-{uuid.uuid4()}"
    activities = StepsHeld(Repository(store))
    worker = Worker(client, task_queue=queue, workflows=[TransferSaga], activities=activities.all())
    async with worker:
        yield queue
        StepsHeld.release_all()
    StepsHeld.gates.clear()
    StepsHeld.started.clear()
