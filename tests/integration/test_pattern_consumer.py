"""The pattern detector behind its consumer, on a real broker and Postgres: a fetch split over
several transactions counts as one event at a time would, and redeliveries count nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.patterns import PatternDetector
from adapters.consumer import EventConsumer
from adapters.event_store import PostgresEventStore
from adapters.schema import pattern_occurrences
from domain.event_store import RecordedEvent
from domain.patterns import Pattern
from domain.users import LockUser
from tests.kafka_support import FAST_GROUP, committed, publish, recorded

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
FIVE = timedelta(minutes=5)


def failure(user: str, version: int, minute: float) -> RecordedEvent:
    return recorded(
        user,
        version,
        "UserLoginFailed",
        {"user_id": user, "reason": "wrong password"},
        recorded_at=T0 + timedelta(minutes=minute),
    )


async def windows_of(engine: AsyncEngine, pattern: str) -> set[tuple[str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(pattern_occurrences.c.key, pattern_occurrences.c.event_id).where(
                pattern_occurrences.c.pattern == pattern
            )
        )
        return {(row.key, row.event_id) for row in rows}


async def consume(consumer: EventConsumer, until: int, within: float = 20.0) -> None:
    """Poll until `until` messages were handled or found handled before."""
    stats = consumer.stats
    await consumer.start()
    try:
        async with asyncio.timeout(within):
            while stats.processed + stats.duplicates < until:
                await consumer.poll(0.5)
    finally:
        await consumer.stop()


async def test_a_fetch_over_several_transactions_and_its_redelivery_lock_each_user_once(
    engine: AsyncEngine, store: PostgresEventStore, kafka_bootstrap: str
) -> None:
    run = uuid.uuid4().hex[:8]
    topic, group = f"cep-{run}", f"cep-{run}"
    a, b, c = (f"user-{run}-{name}" for name in "abc")
    pattern = Pattern(f"logins-{run}", frozenset({"UserLoginFailed"}), "user_id", 3, FIVE)
    locks: list[LockUser] = []

    async def record_lock(command: LockUser) -> None:
        locks.append(command)

    detector = PatternDetector(store, [pattern], record_lock)
    # Two messages a transaction: a's third failure shares one with b's first; c's three
    # fall in three transactions, each started while the one before it was still open.
    first = [
        failure(a, 1, 0), failure(a, 2, 1),
        failure(a, 3, 2), failure(b, 1, 0),
        failure(c, 1, 0), failure(b, 2, 1),
        failure(c, 2, 1), failure(b, 3, 60 * 24 * 6),
        failure(c, 3, 2),
    ]  # fmt: skip
    await publish(kafka_bootstrap, topic, first)
    consumer = EventConsumer(
        engine,
        kafka_bootstrap,
        topic,
        group,
        group,
        detector,
        transaction_size=2,
        **FAST_GROUP,
    )
    await consume(consumer, until=len(first))

    assert consumer.stats.processed == len(first)
    assert [command.user_id for command in locks] == [a, c]
    open_windows = await windows_of(engine, pattern.name)
    assert open_windows == {(b, str(first[7].event_id))}  # b's early ones expired

    # Everything again (a broker refilled by the relay), then b's next two failures: after
    # a restart, the copies count nothing, and b's new ones complete a match of their own.
    again = [*first, failure(b, 4, 60 * 24 * 6 + 1), failure(b, 5, 60 * 24 * 6 + 2)]
    await publish(kafka_bootstrap, topic, again)
    restarted = EventConsumer(
        engine,
        kafka_bootstrap,
        topic,
        group,
        group,
        detector,
        transaction_size=2,
        **FAST_GROUP,
    )
    await consume(restarted, until=len(again))

    assert (restarted.stats.processed, restarted.stats.duplicates) == (2, len(first))
    assert [command.user_id for command in locks] == [a, c, b]
    assert await windows_of(engine, pattern.name) == set()
    assert await committed(kafka_bootstrap, topic, group) == len(first) + len(again)
