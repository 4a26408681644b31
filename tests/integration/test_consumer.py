"""The consumer framework on a real broker and Postgres: effects once, poison dead-lettered."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.consumer import ConsumedEvent, EventConsumer
from adapters.consumer_metrics import ConsumerMetrics
from adapters.kafka import cloudevent_headers, message_value
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
    stats = consumer.stats
    async with asyncio.timeout(within):
        while stats.processed + stats.duplicates + stats.dead_lettered < until:
            await consumer.poll(0.5)


async def test_a_consumer_restarted_in_the_middle_of_a_batch_has_each_effect_once(
    engine: AsyncEngine, kafka_bootstrap: str, effects: str
) -> None:
    topic, group, handler = (f"restart-{uuid.uuid4()}" for _ in range(3))
    events = [recorded(f"s-{i % 5}", i // 5 + 1, "Counted", {"n": i}) for i in range(200)]
    await publish(kafka_bootstrap, topic, events)
    stalled = asyncio.Event()
    handled = 0

    async def record(conn: AsyncConnection, event: ConsumedEvent) -> None:
        await conn.execute(
            text(f"INSERT INTO {EFFECTS} (handler, event_id) VALUES (:handler, :event_id)"),
            {"handler": handler, "event_id": event.event_id},
        )

    async def dies_on_the_50th(conn: AsyncConnection, event: ConsumedEvent) -> None:
        nonlocal handled
        await record(conn, event)
        handled += 1
        if handled == 50:
            stalled.set()
            await asyncio.Event().wait()  # the process dies here, mid-transaction, mid-batch

    first = EventConsumer(
        engine,
        kafka_bootstrap,
        topic,
        group,
        handler,
        dies_on_the_50th,
        transaction_size=20,
        **FAST_GROUP,
    )
    await first.start()
    polling = asyncio.create_task(first.run(30))
    await asyncio.wait_for(stalled.wait(), 20)
    polling.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await polling
    await first.stop()

    second = EventConsumer(engine, kafka_bootstrap, topic, group, handler, record, **FAST_GROUP)
    await second.start()
    try:
        await drain(second, until=200 - first.stats.processed)
    finally:
        await second.stop()

    counts = await effect_counts(engine, handler)
    assert counts == {str(e.event_id): 1 for e in events}
    assert 0 < first.stats.processed < 50
    assert second.stats.duplicates >= 1, "nothing was redelivered, so nothing was tested"


async def test_a_poison_message_goes_to_the_dead_letter_topic_and_the_rest_are_processed(
    engine: AsyncEngine, kafka_bootstrap: str, effects: str
) -> None:
    topic, group, handler = (f"poison-{uuid.uuid4()}" for _ in range(3))
    stream = f"s-{uuid.uuid4()}"
    good1 = recorded(stream, 1, "Counted", {"n": 1})
    poison = recorded(stream, 2, "Counted", {"poison": True})
    good2 = recorded(stream, 3, "Counted", {"n": 3})
    good3 = recorded(stream, 4, "Counted", {"n": 4})
    await publish(kafka_bootstrap, topic, [good1, poison, good2])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"not json", key=stream.encode())
    finally:
        await producer.stop()
    await publish(kafka_bootstrap, topic, [good3])

    async def refuses_poison(conn: AsyncConnection, event: ConsumedEvent) -> None:
        if event.data.get("poison"):
            raise ValueError("cannot digest poison")
        await conn.execute(
            text(f"INSERT INTO {EFFECTS} (handler, event_id) VALUES (:handler, :event_id)"),
            {"handler": handler, "event_id": event.event_id},
        )

    consumer = EventConsumer(
        engine,
        kafka_bootstrap,
        topic,
        group,
        handler,
        refuses_poison,
        retry_delay=0.05,
        **FAST_GROUP,
    )
    await consumer.start()
    try:
        await drain(consumer, until=5)
    finally:
        await consumer.stop()

    assert await effect_counts(engine, handler) == {
        str(good1.event_id): 1,
        str(good2.event_id): 1,
        str(good3.event_id): 1,
    }
    dead = await read_topic(kafka_bootstrap, consumer.dead_letter_topic, 2)
    first, second = (dict(record.headers) for record in dead)
    assert first["ce_id"] == str(poison.event_id).encode()
    assert first["ce_type"] == b"Counted" and first["sagaline_stream_version"] == b"2"
    assert first["dlq_error"] == b"cannot digest poison"
    assert first["dlq_error_type"] == b"ValueError"
    assert first["dlq_attempts"] == b"3"
    assert (first["dlq_topic"], first["dlq_offset"]) == (topic.encode(), b"1")
    assert dead[0].value == b'{"data": {"poison": true}, "metadata": {}}'
    assert second["dlq_error_type"] == b"UndecodableMessage"
    assert dead[1].value == b"not json"

    # The group's committed offset is past everything: a restart would not see them again.
    assert await committed(kafka_bootstrap, topic, group) == 5


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
    engine: AsyncEngine, kafka_bootstrap: str, effects: str
) -> None:
    topic, group, handler = (f"batch-{uuid.uuid4()}" for _ in range(3))
    stream = f"s-{uuid.uuid4()}"
    events = [
        recorded(stream, n, "Counted", {"poison": True} if n == 7 else {"n": n})
        for n in range(1, 21)
    ]
    # The last five arrive twice, in the batch after the poison: their second copies are
    # duplicates, never handled.
    await publish(kafka_bootstrap, topic, [*events, *events[-5:]])
    recorder = BatchRecorder(handler)
    consumer = EventConsumer(
        engine, kafka_bootstrap, topic, group, handler, recorder, retry_delay=0.05, **FAST_GROUP
    )
    await consumer.start()
    try:
        await drain(consumer, until=25)
    finally:
        await consumer.stop()

    poison = str(events[6].event_id)
    assert await effect_counts(engine, handler) == {
        str(e.event_id): 1 for e in events if str(e.event_id) != poison
    }
    assert consumer.stats.duplicates == 5 and consumer.stats.dead_lettered == 1
    assert max(len(call) for call in recorder.calls) > 1, "no batch was handled together"
    # Every call the poison was in failed; it was dead-lettered after trying it alone.
    assert [call for call in recorder.calls if poison in call][-3:] == [[poison]] * 3
    dead = await read_topic(kafka_bootstrap, consumer.dead_letter_topic, 1)
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
    engine: AsyncEngine, kafka_bootstrap: str, effects: str
) -> None:
    topic, group, handler = (f"fetch-{uuid.uuid4()}" for _ in range(3))
    events = [recorded(f"s-{i % 12}", i // 12 + 1, "Counted", {"n": i}) for i in range(120)]
    await publish(kafka_bootstrap, topic, events, partitions=3)
    recorder = PartitionRecorder(handler)
    consumer = EventConsumer(
        engine, kafka_bootstrap, topic, group, handler, recorder, partitions=3, **FAST_GROUP
    )
    await consumer.start()
    try:
        await drain(consumer, until=120)
    finally:
        await consumer.stop()

    assert await effect_counts(engine, handler) == {str(e.event_id): 1 for e in events}
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
    offsets = [await committed(kafka_bootstrap, topic, group, p) for p in range(3)]
    assert sum(offset or 0 for offset in offsets) == 120


async def test_a_failing_transaction_of_a_fetch_keeps_those_before_it_and_redoes_the_rest(
    engine: AsyncEngine, kafka_bootstrap: str, effects: str
) -> None:
    topic, group, handler = (f"chunks-{uuid.uuid4()}" for _ in range(3))
    stream = f"s-{uuid.uuid4()}"
    events = [
        recorded(stream, n, "Counted", {"poison": True} if n == 25 else {"n": n})
        for n in range(1, 41)
    ]
    await publish(kafka_bootstrap, topic, events)
    ids = [str(event.event_id) for event in events]
    recorder = BatchRecorder(handler)
    consumer = EventConsumer(
        engine,
        kafka_bootstrap,
        topic,
        group,
        handler,
        recorder,
        retry_delay=0.05,
        transaction_size=10,
        **FAST_GROUP,
    )
    await consumer.start()
    try:
        await drain(consumer, until=40)
    finally:
        await consumer.stop()

    assert await effect_counts(engine, handler) == {i: 1 for i in ids if i != ids[24]}
    assert consumer.stats.dead_lettered == 1 and consumer.stats.duplicates == 0
    # The fetch's transactions of ten, in order, until the poison's failed; the one after it
    # was never handled, and what the first two stored was not handled again.
    assert recorder.calls[:3] == [ids[0:10], ids[10:20], ids[20:30]]
    assert all(i not in call for call in recorder.calls[3:] for i in ids[:20])
    assert [call for call in recorder.calls if ids[24] in call][-3:] == [[ids[24]]] * 3
    assert await committed(kafka_bootstrap, topic, group) == 40


async def test_messages_of_types_the_handler_does_not_watch_are_passed_over_unread(
    engine: AsyncEngine, kafka_bootstrap: str, effects: str
) -> None:
    topic, group, handler = (f"watch-{uuid.uuid4()}" for _ in range(3))
    stream = f"s-{uuid.uuid4()}"
    watched = [recorded(stream, n, "Counted", {"n": n}) for n in (1, 3)]
    other = recorded(stream, 2, "Ignored", {"n": 2})
    await publish(kafka_bootstrap, topic, [watched[0], other, watched[1]])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        # Not JSON: a message the consumer decoded would go to the dead-letter topic.
        await producer.send_and_wait(
            topic, b"not json", key=stream.encode(), headers=[("ce_type", b"Ignored")]
        )
    finally:
        await producer.stop()
    recorder = BatchRecorder(handler)
    registry = CollectorRegistry()
    consumer = EventConsumer(
        engine,
        kafka_bootstrap,
        topic,
        group,
        handler,
        recorder,
        event_types={"Counted"},
        metrics=ConsumerMetrics(registry),
        **FAST_GROUP,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(20):
            while consumer.stats.processed + consumer.stats.skipped < 4:
                await consumer.poll(0.5)
    finally:
        await consumer.stop()

    assert await effect_counts(engine, handler) == {str(e.event_id): 1 for e in watched}
    assert (consumer.stats.processed, consumer.stats.skipped) == (2, 2)
    messages = "sagaline_consumer_messages_total"
    for outcome, count in (("processed", 2), ("skipped", 2)):
        labels = {"consumer": handler, "outcome": outcome}
        assert registry.get_sample_value(messages, labels) == count
    assert consumer.stats.dead_lettered == 0
    async with engine.connect() as conn:
        claimed = await conn.execute(
            text("SELECT message_id FROM processed_messages WHERE handler = :h"), {"h": handler}
        )
        assert {row.message_id for row in claimed} == {str(e.event_id) for e in watched}
    assert await committed(kafka_bootstrap, topic, group) == 4


async def test_a_message_naming_its_type_twice_is_watched_by_the_type_it_decodes_to(
    engine: AsyncEngine, kafka_bootstrap: str, effects: str
) -> None:
    topic, group, handler = (f"twice-{uuid.uuid4()}" for _ in range(3))
    stream = f"s-{uuid.uuid4()}"
    watched = recorded(stream, 1, "Counted", {"n": 1})
    retyped = recorded(stream, 2, "Counted", {"n": 2})
    await publish(kafka_bootstrap, topic, [watched])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        # A second `ce_type` after the first: the message is an `Ignored` as it decodes.
        headers = [*cloudevent_headers(retyped, "test"), ("ce_type", b"Ignored")]
        await producer.send_and_wait(
            topic, message_value(retyped), key=stream.encode(), headers=headers
        )
    finally:
        await producer.stop()
    recorder = BatchRecorder(handler)
    consumer = EventConsumer(
        engine,
        kafka_bootstrap,
        topic,
        group,
        handler,
        recorder,
        event_types={"Counted"},
        **FAST_GROUP,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(20):
            while consumer.stats.processed + consumer.stats.skipped < 2:
                await consumer.poll(0.5)
    finally:
        await consumer.stop()

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
    engine: AsyncEngine, kafka_bootstrap: str, effects: str
) -> None:
    topic, group, handler = (f"copies-{uuid.uuid4()}" for _ in range(3))
    stream = f"s-{uuid.uuid4()}"
    events = [recorded(stream, n, "Counted", {"n": n}) for n in range(1, 7)]
    # Transactions of four: the second holds two originals and two copies of the first's.
    await publish(kafka_bootstrap, topic, [*events, *events])
    # The first transaction is retried: it claims its ids again after the second one could
    # have claimed the copies, and must not wait on the second while the second waits on it.
    recorder = FailsFirstBatch(handler)
    consumer = EventConsumer(
        engine,
        kafka_bootstrap,
        topic,
        group,
        handler,
        recorder,
        retry_delay=0.05,
        transaction_size=4,
        **FAST_GROUP,
    )
    await consumer.start()
    try:
        await drain(consumer, until=12)
    finally:
        await consumer.stop()

    assert await effect_counts(engine, handler) == {str(e.event_id): 1 for e in events}
    assert (consumer.stats.processed, consumer.stats.duplicates) == (6, 6)
    assert recorder.calls[0] == [], "the first transaction did not meet its outage"
    assert sorted(i for call in recorder.calls for i in call) == sorted(
        str(e.event_id) for e in events
    )
    assert await committed(kafka_bootstrap, topic, group) == 12


async def test_a_fetch_never_waits_in_python_on_rows_another_consumer_waits_for(
    engine: AsyncEngine, kafka_bootstrap: str, effects: str
) -> None:
    topic, group, handler = (f"cycle-{uuid.uuid4()}" for _ in range(3))
    stream = f"s-{uuid.uuid4()}"
    events = [recorded(stream, n, "Counted", {"n": n}) for n in range(1, 9)]
    first_id, later_id = str(events[0].event_id), str(events[4].event_id)
    await publish(kafka_bootstrap, topic, events)
    recorder = BatchRecorder(handler)
    # Transactions of four: the fetch's first holds `first_id`, its second `later_id`.
    consumer = EventConsumer(
        engine, kafka_bootstrap, topic, group, handler, recorder, transaction_size=4, **FAST_GROUP
    )
    claim = text("INSERT INTO processed_messages (handler, message_id) VALUES (:h, :m)")
    await consumer.start()
    try:
        # A stale consumer of the same handler (a rebalance, a retried activity) holds
        # `first_id`, so the fetch's first transaction waits for it in Postgres.
        async with engine.connect() as stale:
            pid = (await stale.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await stale.execute(claim, {"h": handler, "m": first_id})
            polling = asyncio.create_task(drain(consumer, until=8))

            async def first_transaction_waits() -> bool:
                async with engine.connect() as conn:
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
            await stale.execute(claim, {"h": handler, "m": later_id})
            await stale.commit()
            await polling
    finally:
        await consumer.stop()

    handled = {str(e.event_id): 1 for e in events if str(e.event_id) not in (first_id, later_id)}
    assert await effect_counts(engine, handler) == handled
    assert (consumer.stats.processed, consumer.stats.duplicates) == (6, 2)
