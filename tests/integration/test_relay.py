"""The relay publishes stored events to a real Kafka-protocol broker as CloudEvents."""

from __future__ import annotations

import uuid
from collections import defaultdict

from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.relay import RelayActivities
from adapters.event_store import PostgresEventStore
from adapters.kafka import KafkaEventPublisher
from domain.event_store import NO_STREAM, NewEvent, StreamAppend


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
