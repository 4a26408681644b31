"""The consumer framework on a real broker and Postgres: effects once, poison dead-lettered."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.consumer import ConsumedEvent, EventConsumer, Handler
from adapters.consumer_metrics import ConsumerMetrics
from adapters.kafka import cloudevent_headers, message_value
from domain.event_store import RecordedEvent
from tests.kafka_support import FAST_GROUP, committed, publish, read_topic, recorded
from tests.waiting import eventually

EFFECTS = "consumer_test_effects"


@pytest.fixture(scope="module")
async def effects(engine: AsyncEngine) -> AsyncIterator[str]:
    """A table of handler effects, deliberately without a unique key: duplicates would show."""
    async with engine.begin() as conn:
        await conn.execute(
            text(f"CREATE TABLE IF NOT EXISTS {EFFECTS} (handler text, event_id text)")
        )
    yield EFFECTS


async def effect_counts(engine: AsyncEngine, handler: str) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT event_id, count(*) FROM {EFFECTS} WHERE handler = :h GROUP BY event_id"),
            {"h": handler},
        )
        return {event_id: int(n) for event_id, n in rows.all()}


async def drain(consumer: EventConsumer, until: int, within: float = 20.0) -> None:
    """Poll until `until` messages have had an outcome, failing after `within` seconds."""
    stats = consumer.stats
    async with asyncio.timeout(within):
        while stats.processed + stats.duplicates + stats.dead_lettered + stats.skipped < until:
            await consumer.poll(0.5)


def fresh_name() -> str:
    return f"consumer-{uuid.uuid4()}"


@dataclass
class Subscription:
    """One test's topic, consumer group and handler name, fresh, on the session's broker and
    database: what every consumer of the test is built from."""

    engine: AsyncEngine
    bootstrap: str
    topic: str = field(default_factory=fresh_name)
    group: str = field(default_factory=fresh_name)
    handler: str = field(default_factory=fresh_name)

    def consumer(self, handle: Handler, **options: Any) -> EventConsumer:
        """A consumer of the topic in the group under the handler's name, with fast group
        timings; `options` are the consumer's own."""
        return EventConsumer(
            self.engine,
            self.bootstrap,
            self.topic,
            self.group,
            self.handler,
            handle,
            **{**FAST_GROUP, **options},
        )

    @contextlib.asynccontextmanager
    async def started(self, handle: Handler, **options: Any) -> AsyncIterator[EventConsumer]:
        """`consumer(handle, **options)`, started for the block and stopped after it."""
        consumer = self.consumer(handle, **options)
        await consumer.start()
        try:
            yield consumer
        finally:
            await consumer.stop()

    async def publish(self, events: Sequence[RecordedEvent], partitions: int = 1) -> None:
        """Publish events to the topic as the relay does."""
        await publish(self.bootstrap, self.topic, events, partitions)

    async def send(self, value: bytes, key: str, headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Send one message to the topic as it is, whatever it holds."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                self.topic, value, key=key.encode(), headers=list(headers) or None
            )
        finally:
            await producer.stop()

    async def record(self, conn: AsyncConnection, event: ConsumedEvent) -> None:
        """The plainest handler: one effect row for the event."""
        await conn.execute(
            text(f"INSERT INTO {EFFECTS} (handler, event_id) VALUES (:handler, :event_id)"),
            {"handler": self.handler, "event_id": event.event_id},
        )

    async def effects(self) -> dict[str, int]:
        """How many effect rows each event has under the handler."""
        return await effect_counts(self.engine, self.handler)

    async def committed(self, partition: int = 0) -> int | None:
        """The group's committed offset of a partition of the topic."""
        return await committed(self.bootstrap, self.topic, self.group, partition)


@pytest.fixture
def subscription(engine: AsyncEngine, kafka_bootstrap: str, effects: str) -> Subscription:
    return Subscription(engine, kafka_bootstrap)


async def test_a_consumer_restarted_in_the_middle_of_a_batch_has_each_effect_once(
    subscription: Subscription,
) -> None:
    events = [recorded(f"s-{i % 5}", i // 5 + 1, "Counted", {"n": i}) for i in range(200)]
    await subscription.publish(events)
    stalled = asyncio.Event()
    handled = 0

    async def dies_on_the_50th(conn: AsyncConnection, event: ConsumedEvent) -> None:
        nonlocal handled
        await subscription.record(conn, event)
        handled += 1
        if handled == 50:
            stalled.set()
            await asyncio.Event().wait()  # the process dies here, mid-transaction, mid-batch

    async with subscription.started(dies_on_the_50th, transaction_size=20) as first:
        polling = asyncio.create_task(first.run(30))
        await asyncio.wait_for(stalled.wait(), 20)
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling

    async with subscription.started(subscription.record) as second:
        await drain(second, until=200 - first.stats.processed)

    counts = await subscription.effects()
    assert counts == {str(e.event_id): 1 for e in events}
    assert 0 < first.stats.processed < 50
    assert second.stats.duplicates >= 1, "nothing was redelivered, so nothing was tested"


async def test_a_poison_message_goes_to_the_dead_letter_topic_and_the_rest_are_processed(
    subscription: Subscription,
) -> None:
    stream = f"s-{uuid.uuid4()}"
    good1 = recorded(stream, 1, "Counted", {"n": 1})
    poison = recorded(stream, 2, "Counted", {"poison": True})
    good2 = recorded(stream, 3, "Counted", {"n": 3})
    good3 = recorded(stream, 4, "Counted", {"n": 4})
    await subscription.publish([good1, poison, good2])
    await subscription.send(b"not json", key=stream)
    await subscription.publish([good3])

    async def refuses_poison(conn: AsyncConnection, event: ConsumedEvent) -> None:
        if event.data.get("poison"):
            raise ValueError("cannot digest poison")
        await subscription.record(conn, event)

    async with subscription.started(refuses_poison, retry_delay=0.05) as consumer:
        await drain(consumer, until=5)

    assert await subscription.effects() == {
        str(good1.event_id): 1,
        str(good2.event_id): 1,
        str(good3.event_id): 1,
    }
    dead = await read_topic(subscription.bootstrap, consumer.dead_letter_topic, 2)
    first, second = (dict(record.headers) for record in dead)
    assert first["ce_id"] == str(poison.event_id).encode()
    assert first["ce_type"] == b"Counted" and first["sagaline_stream_version"] == b"2"
    assert first["dlq_error"] == b"cannot digest poison"
    assert first["dlq_error_type"] == b"ValueError"
    assert first["dlq_attempts"] == b"3"
    assert (first["dlq_topic"], first["dlq_offset"]) == (subscription.topic.encode(), b"1")
    assert dead[0].value == b'{"data": {"poison": true}, "metadata": {}}'
    assert second["dlq_error_type"] == b"UndecodableMessage"
    assert dead[1].value == b"not json"

    # The group's committed offset is past everything: a restart would not see them again.
    assert await subscription.committed() == 5


class BatchRecorder:
    """A batch handler storing one effect row per event, refusing batches that hold poison."""

    def __init__(self, handler: str) -> None:
        self.handler = handler
        self.calls: list[list[str]] = []

    async def __call__(self, conn: AsyncConnection, event: ConsumedEvent) -> None:
        raise AssertionError("a batch handler is called with batches only")

    async def handle_batch(self, conn: AsyncConnection, events: Sequence[ConsumedEvent]) -> None:
        self.calls.append([event.event_id for event in events])
        if any(event.data.get("poison") for event in events):
            raise ValueError("cannot digest poison")
        await conn.execute(
            text(
                f"INSERT INTO {EFFECTS} (handler, event_id) SELECT :h, unnest(CAST(:ids AS text[]))"
            ),
            {"h": self.handler, "ids": [event.event_id for event in events]},
        )


async def test_a_batch_handler_gets_first_deliveries_together_and_poison_goes_alone(
    subscription: Subscription,
) -> None:
    stream = f"s-{uuid.uuid4()}"
    events = [
        recorded(stream, n, "Counted", {"poison": True} if n == 7 else {"n": n})
        for n in range(1, 21)
    ]
    # The last five arrive twice, in the batch after the poison: their second copies are
    # duplicates, never handled.
    await subscription.publish([*events, *events[-5:]])
    recorder = BatchRecorder(subscription.handler)
    async with subscription.started(recorder, retry_delay=0.05) as consumer:
        await drain(consumer, until=25)

    poison = str(events[6].event_id)
    assert await subscription.effects() == {
        str(e.event_id): 1 for e in events if str(e.event_id) != poison
    }
    assert consumer.stats.duplicates == 5 and consumer.stats.dead_lettered == 1
    assert max(len(call) for call in recorder.calls) > 1, "no batch was handled together"
    # Every call the poison was in failed; it was dead-lettered after trying it alone.
    assert [call for call in recorder.calls if poison in call][-3:] == [[poison]] * 3
    dead = await read_topic(subscription.bootstrap, consumer.dead_letter_topic, 1)
    assert dict(dead[0].headers)["ce_id"] == poison.encode()


class PartitionRecorder(BatchRecorder):
    """A batch recorder noting where each event of a call came from."""

    def __init__(self, handler: str) -> None:
        super().__init__(handler)
        self.origins: list[list[tuple[int, str, int]]] = []

    async def handle_batch(self, conn: AsyncConnection, events: Sequence[ConsumedEvent]) -> None:
        self.origins.append([(e.partition, e.stream_id, e.stream_version) for e in events])
        await super().handle_batch(conn, events)


async def test_a_fetch_over_several_partitions_is_stored_in_one_handler_call(
    subscription: Subscription,
) -> None:
    events = [recorded(f"s-{i % 12}", i // 12 + 1, "Counted", {"n": i}) for i in range(120)]
    await subscription.publish(events, partitions=3)
    recorder = PartitionRecorder(subscription.handler)
    async with subscription.started(recorder, partitions=3) as consumer:
        await drain(consumer, until=120)

    assert await subscription.effects() == {str(e.event_id): 1 for e in events}
    assert consumer.stats.processed == 120 and consumer.stats.dead_lettered == 0
    assert any(len({partition for partition, _, _ in call}) > 1 for call in recorder.origins), (
        "no call held messages of more than one partition"
    )
    # Each stream's events came in order, within and across calls.
    versions: dict[str, list[int]] = {}
    for call in recorder.origins:
        for _, stream, version in call:
            versions.setdefault(stream, []).append(version)
    assert versions == {f"s-{n}": list(range(1, 11)) for n in range(12)}
    offsets = [await subscription.committed(p) for p in range(3)]
    assert sum(offset or 0 for offset in offsets) == 120


async def test_a_failing_transaction_of_a_fetch_keeps_those_before_it_and_redoes_the_rest(
    subscription: Subscription,
) -> None:
    stream = f"s-{uuid.uuid4()}"
    events = [
        recorded(stream, n, "Counted", {"poison": True} if n == 25 else {"n": n})
        for n in range(1, 41)
    ]
    await subscription.publish(events)
    ids = [str(event.event_id) for event in events]
    recorder = BatchRecorder(subscription.handler)
    async with subscription.started(recorder, retry_delay=0.05, transaction_size=10) as consumer:
        await drain(consumer, until=40)

    assert await subscription.effects() == {i: 1 for i in ids if i != ids[24]}
    assert consumer.stats.dead_lettered == 1 and consumer.stats.duplicates == 0
    # The fetch's transactions of ten, in order, until the poison's failed; the one after it
    # was never handled, and what the first two stored was not handled again.
    assert recorder.calls[:3] == [ids[0:10], ids[10:20], ids[20:30]]
    assert all(i not in call for call in recorder.calls[3:] for i in ids[:20])
    assert [call for call in recorder.calls if ids[24] in call][-3:] == [[ids[24]]] * 3
    assert await subscription.committed() == 40


async def test_messages_of_types_the_handler_does_not_watch_are_passed_over_unread(
    subscription: Subscription,
) -> None:
    stream = f"s-{uuid.uuid4()}"
    watched = [recorded(stream, n, "Counted", {"n": n}) for n in (1, 3)]
    other = recorded(stream, 2, "Ignored", {"n": 2})
    await subscription.publish([watched[0], other, watched[1]])
    # Not JSON: a message the consumer decoded would go to the dead-letter topic.
    await subscription.send(b"not json", key=stream, headers=[("ce_type", b"Ignored")])
    recorder = BatchRecorder(subscription.handler)
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    async with subscription.started(recorder, event_types={"Counted"}, metrics=metrics) as consumer:
        await drain(consumer, until=4)

    assert await subscription.effects() == {str(e.event_id): 1 for e in watched}
    assert (consumer.stats.processed, consumer.stats.skipped) == (2, 2)
    messages = "sagaline_consumer_messages_total"
    for outcome, count in (("processed", 2), ("skipped", 2)):
        labels = {"consumer": subscription.handler, "outcome": outcome}
        assert registry.get_sample_value(messages, labels) == count
    assert consumer.stats.dead_lettered == 0
    async with subscription.engine.connect() as conn:
        claimed = await conn.execute(
            text("SELECT message_id FROM processed_messages WHERE handler = :h"),
            {"h": subscription.handler},
        )
        assert {row.message_id for row in claimed} == {str(e.event_id) for e in watched}
    assert await subscription.committed() == 4


async def test_a_message_naming_its_type_twice_is_watched_by_the_type_it_decodes_to(
    subscription: Subscription,
) -> None:
    stream = f"s-{uuid.uuid4()}"
    watched = recorded(stream, 1, "Counted", {"n": 1})
    retyped = recorded(stream, 2, "Counted", {"n": 2})
    await subscription.publish([watched])
    # A second `ce_type` after the first: the message is an `Ignored` as it decodes.
    headers = [*cloudevent_headers(retyped, "test"), ("ce_type", b"Ignored")]
    await subscription.send(message_value(retyped), key=stream, headers=headers)
    recorder = BatchRecorder(subscription.handler)
    async with subscription.started(recorder, event_types={"Counted"}) as consumer:
        await drain(consumer, until=2)

    assert (consumer.stats.processed, consumer.stats.skipped) == (1, 1)
    assert recorder.calls == [[str(watched.event_id)]]


class FailsFirstBatch(BatchRecorder):
    """A batch recorder whose first batch meets an outage (the transaction is retried)."""

    async def handle_batch(self, conn: AsyncConnection, events: Sequence[ConsumedEvent]) -> None:
        if not self.calls:
            self.calls.append([])
            raise ConnectionError("the database went away for a moment")
        await super().handle_batch(conn, events)


async def test_copies_in_later_transactions_of_the_same_fetch_are_duplicates(
    subscription: Subscription,
) -> None:
    stream = f"s-{uuid.uuid4()}"
    events = [recorded(stream, n, "Counted", {"n": n}) for n in range(1, 7)]
    # Transactions of four: the second holds two originals and two copies of the first's.
    await subscription.publish([*events, *events])
    # The first transaction is retried: it claims its ids again after the second one could
    # have claimed the copies, and must not wait on the second while the second waits on it.
    recorder = FailsFirstBatch(subscription.handler)
    async with subscription.started(recorder, retry_delay=0.05, transaction_size=4) as consumer:
        await drain(consumer, until=12)

    assert await subscription.effects() == {str(e.event_id): 1 for e in events}
    assert (consumer.stats.processed, consumer.stats.duplicates) == (6, 6)
    assert recorder.calls[0] == [], "the first transaction did not meet its outage"
    assert sorted(i for call in recorder.calls for i in call) == sorted(
        str(e.event_id) for e in events
    )
    assert await subscription.committed() == 12


async def test_a_fetch_never_waits_in_python_on_rows_another_consumer_waits_for(
    subscription: Subscription,
) -> None:
    stream = f"s-{uuid.uuid4()}"
    events = [recorded(stream, n, "Counted", {"n": n}) for n in range(1, 9)]
    first_id, later_id = str(events[0].event_id), str(events[4].event_id)
    await subscription.publish(events)
    recorder = BatchRecorder(subscription.handler)
    claim = text("INSERT INTO processed_messages (handler, message_id) VALUES (:h, :m)")
    # Transactions of four: the fetch's first holds `first_id`, its second `later_id`. A
    # stale consumer of the same handler (a rebalance, a retried activity) holds `first_id`,
    # so the fetch's first transaction waits for it in Postgres.
    async with (
        subscription.started(recorder, transaction_size=4) as consumer,
        subscription.engine.connect() as stale,
    ):
        pid = (await stale.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await stale.execute(claim, {"h": subscription.handler, "m": first_id})
        polling = asyncio.create_task(drain(consumer, until=8))

        async def first_transaction_waits() -> bool:
            async with subscription.engine.connect() as conn:
                blocked = await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE CAST(:pid AS integer) = ANY(pg_blocking_pids(pid))"
                    ),
                    {"pid": pid},
                )
                return bool(blocked.scalar_one())

        await eventually(first_transaction_waits, 10, "the first transaction waits")
        # The stale consumer goes on to `later_id`. Had the second transaction claimed
        # it already, this would wait for a transaction that waits, in Python, for the
        # first: a cycle Postgres cannot see.
        await stale.execute(text("SET LOCAL lock_timeout = '3s'"))
        await stale.execute(claim, {"h": subscription.handler, "m": later_id})
        await stale.commit()
        await polling

    handled = {str(e.event_id): 1 for e in events if str(e.event_id) not in (first_id, later_id)}
    assert await subscription.effects() == handled
    assert (consumer.stats.processed, consumer.stats.duplicates) == (6, 2)
