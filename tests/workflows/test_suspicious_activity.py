"""Complex event processing end to end: failed logins on Kafka lock the user through Temporal.

Event time is controlled by publishing the user's real stored UserLoginFailed events, through
the relay's own publisher, to a topic of the test's own with a chosen recorded_at (ce_time).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.service import RPCError

from activities.patterns import PatternDetector
from adapters.consumer import EventConsumer
from adapters.event_store import PostgresEventStore
from adapters.schema import pattern_occurrences
from domain.event_store import RecordedEvent
from domain.patterns import PATTERNS
from domain.repository import Repository
from domain.users import User, UserStatus, suspicious_activity_stream
from runtime.config import Settings
from runtime.patterns import lock_user_starter, pattern_consumer
from tests.kafka_support import publish
from tests.workflows.bank import Bank

pytestmark = pytest.mark.usefixtures("worker")

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


class Detection:
    """A topic, a consumer group and a user of the test's own."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        store: PostgresEventStore,
        client: Client,
        task_queue: str,
    ) -> None:
        run = uuid.uuid4().hex[:8]
        self.settings = settings.model_copy(
            update={
                "kafka_topic": f"cep-{run}",
                "kafka_partitions": 2,
                "kafka_consumer_session_timeout_ms": 3000,
            }
        )
        self.group = f"cep-{run}"
        self.engine = engine
        self.store = store
        self.client = client
        self.detector = PatternDetector(store, PATTERNS, lock_user_starter(client, task_queue))

    async def failed_logins(self, user_id: str, minutes: list[float]) -> list[RecordedEvent]:
        """Record failed logins for the user; their event times are BASE + minutes."""
        repository = Repository(self.store)
        for _ in minutes:
            user = await repository.load(User, user_id)
            user.record_login(False, "wrong password")
            await repository.save(user, lambda _: uuid.uuid4(), {})
        stored = [e for e in await self.store.read_stream(user_id) if e.type == "UserLoginFailed"]
        return [
            dataclasses.replace(event, recorded_at=BASE + timedelta(minutes=m))
            for event, m in zip(stored, minutes, strict=True)
        ]

    async def deliver(self, events: list[RecordedEvent]) -> None:
        await publish(
            self.settings.require_kafka_bootstrap(),
            self.settings.kafka_topic,
            events,
            partitions=self.settings.kafka_partitions,
        )

    def consumer(self) -> EventConsumer:
        return pattern_consumer(self.settings, self.engine, self.detector, group_id=self.group)

    async def consume(self, consumer: EventConsumer, messages: int) -> None:
        stats = consumer.stats
        async with asyncio.timeout(30):
            while stats.processed + stats.duplicates + stats.dead_lettered < messages:
                await consumer.poll(0.5)
        assert stats.dead_lettered == 0

    async def run_consumer(self, messages: int) -> EventConsumer:
        consumer = self.consumer()
        await consumer.start()
        try:
            await self.consume(consumer, messages)
        finally:
            await consumer.stop()
        return consumer

    async def status(self, user_id: str) -> UserStatus:
        return (await Repository(self.store).load(User, user_id)).status

    async def detections(self, user_id: str) -> list[RecordedEvent]:
        return await self.store.read_stream(suspicious_activity_stream(user_id))

    async def lock_result(self, user_id: str, first: RecordedEvent) -> None:
        workflow_id = f"lock-user/cep/suspicious-logins/{user_id}/{first.event_id}"
        handle = self.client.get_workflow_handle(workflow_id)
        await asyncio.wait_for(handle.result(), 20)

    async def open_occurrences(self, user_id: str) -> int:
        query = select(func.count()).where(pattern_occurrences.c.key == user_id)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


@pytest.fixture
def detection(
    settings: Settings,
    engine: AsyncEngine,
    store: PostgresEventStore,
    client: Client,
    task_queue: str,
) -> Detection:
    return Detection(settings, engine, store, client, task_queue)


@pytest.fixture
def bank(store: PostgresEventStore, client: Client, task_queue: str) -> Bank:
    return Bank(store, client, task_queue)


async def test_three_failed_logins_within_five_minutes_lock_the_user(
    detection: Detection, bank: Bank
) -> None:
    user = await bank.user()
    first, second, third = await detection.failed_logins(user, [0, 4, 2])
    await detection.deliver([first, second, third])  # out of order: 0, 4, then 2 minutes

    await detection.run_consumer(3)

    await detection.lock_result(user, first)
    assert await detection.status(user) is UserStatus.LOCKED
    (found,) = await detection.detections(user)
    assert found.type == "SuspiciousUserActivity"
    assert found.data["event_count"] == 3
    assert datetime.fromisoformat(found.data["window_start"]) == BASE
    assert datetime.fromisoformat(found.data["window_end"]) == BASE + timedelta(minutes=4)
    assert found.data["event_ids"] == [str(e.event_id) for e in (first, third, second)]
    assert await detection.open_occurrences(user) == 0


async def test_three_failed_logins_spread_over_six_minutes_do_not_lock_the_user(
    detection: Detection, bank: Bank
) -> None:
    user = await bank.user()
    first, second, third = await detection.failed_logins(user, [0, 3, 6])
    await detection.deliver([first, second, third])

    await detection.run_consumer(3)

    assert await detection.status(user) is UserStatus.ACTIVE
    assert await detection.detections(user) == []
    with pytest.raises(RPCError):
        await detection.client.get_workflow_handle(
            f"lock-user/cep/suspicious-logins/{user}/{first.event_id}"
        ).describe()
    assert await detection.open_occurrences(user) == 2  # the first one expired


async def test_the_same_failed_logins_delivered_twice_lock_the_user_once(
    detection: Detection, bank: Bank
) -> None:
    user = await bank.user()
    failures = await detection.failed_logins(user, [0, 1, 2])
    await detection.deliver(failures)
    await detection.deliver(failures)

    consumer = await detection.run_consumer(6)

    assert (consumer.stats.processed, consumer.stats.duplicates) == (3, 3)
    await detection.lock_result(user, failures[0])
    assert len(await detection.detections(user)) == 1
    locks = [e for e in await detection.store.read_stream(user) if e.type == "UserLocked"]
    assert len(locks) == 1


async def test_a_restart_between_the_second_and_third_failure_still_locks_the_user(
    detection: Detection, bank: Bank
) -> None:
    user = await bank.user()
    first, second, third = await detection.failed_logins(user, [0, 1, 2])
    await detection.deliver([first, second])
    await detection.run_consumer(2)
    assert await detection.open_occurrences(user) == 2

    await detection.deliver([third])
    restarted = await detection.run_consumer(1)

    assert restarted.stats.processed == 1
    await detection.lock_result(user, first)
    assert await detection.status(user) is UserStatus.LOCKED
