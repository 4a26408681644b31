"""The relay publishes stored events to a real Kafka-protocol broker as CloudEvents."""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.relay import RELAY_CHECKPOINT, RelayActivities
from adapters import checkpoints
from adapters.event_store import PostgresEventStore
from adapters.kafka import KafkaEventPublisher
from domain.event_store import NO_STREAM, NewEvent, StreamAppend
from runtime.config import Settings
from runtime.projections import print_status


async def test_relay_publishes_every_event_in_stream_order_with_cloudevent_headers(
    engine: AsyncEngine, store: PostgresEventStore, kafka_bootstrap: str, database_url: str
) -> None:
    topic = f"relay-test-{uuid.uuid4()}"
    streams = [f"relay-{uuid.uuid4()}" for _ in range(3)]
    appended: dict[str, list[str]] = {}
    for stream in streams:
        events = [NewEvent(uuid.uuid4(), "Counted", {"n": n}) for n in range(4)]
        await store.append(StreamAppend(stream, events, NO_STREAM))
        appended[stream] = [str(e.event_id) for e in events]

    def publisher() -> KafkaEventPublisher:
        return KafkaEventPublisher(kafka_bootstrap, topic, partitions=2)

    relay = RelayActivities(engine, store, database_url, publisher, batch_size=50)
    active = publisher()
    await active.start()
    try:
        while await relay.publish_batch(active):
            pass
    finally:
        await active.stop()

    received: dict[str, list[dict[str, bytes]]] = defaultdict(list)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        while sum(len(received[s]) for s in streams) < 12:
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, "the relay's messages did not arrive"
            for messages in batch.values():
                for message in messages:
                    key = message.key.decode() if message.key else ""
                    received[key].append(dict(message.headers))
    finally:
        await consumer.stop()

    for stream in streams:
        headers = received[stream]
        assert [h["ce_id"].decode() for h in headers] == appended[stream]
        assert [int(h["sagaline_stream_version"]) for h in headers] == [1, 2, 3, 4]
        assert all(h["ce_type"] == b"Counted" and h["ce_specversion"] == b"1.0" for h in headers)
        assert all(h["ce_source"] and h["ce_time"] for h in headers)


async def test_projections_status_shows_the_relay_position_and_lag(
    engine: AsyncEngine,
    store: PostgresEventStore,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await store.append(
        StreamAppend(f"status-{uuid.uuid4()}", [NewEvent(uuid.uuid4(), "Counted", {})], NO_STREAM)
    )
    async with engine.begin() as conn:
        position = await checkpoints.load(conn, RELAY_CHECKPOINT)
    head = await store.head_position()

    assert await print_status(settings) == 0

    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("relay ")]
    assert line.split()[1:] == [
        "position",
        str(position),
        "lag",
        str(head - position),
        "recoveries",
        "0",
    ]
    assert head > position
