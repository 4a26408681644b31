"""Test helpers: crafted stored events published as the relay would, and topic readers."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from adapters.kafka import KafkaEventPublisher
from domain.event_store import RecordedEvent
from domain.events import JsonDict

FAST_GROUP = {"session_timeout_ms": 3000, "rebalance_timeout_ms": 1000}
"""Group timings for tests: a member that died is noticed within seconds, not ten."""


async def committed(bootstrap: str, topic: str, group_id: str, partition: int = 0) -> int | None:
    """A consumer group's committed offset for a partition, read without joining the group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id)
    await consumer.start()
    try:
        offset = await consumer.committed(TopicPartition(topic, partition))
    finally:
        await consumer.stop()
    return None if offset is None else int(offset)


def recorded(
    stream_id: str,
    version: int,
    type: str,
    data: JsonDict,
    recorded_at: datetime | None = None,
    position: int = 0,
) -> RecordedEvent:
    """A stored event that never touched the store (its event time is the caller's choice)."""
    return RecordedEvent(
        position=position or version,
        stream_id=stream_id,
        version=version,
        event_id=uuid.uuid4(),
        type=type,
        schema_version=1,
        data=data,
        metadata={},
        recorded_at=recorded_at or datetime.now(UTC),
    )


async def publish(
    bootstrap: str, topic: str, events: Sequence[RecordedEvent], partitions: int = 1
) -> None:
    """Publish events exactly as the relay does."""
    publisher = KafkaEventPublisher(bootstrap, topic, partitions)
    await publisher.start()
    try:
        await publisher.publish(events)
    finally:
        await publisher.stop()


async def read_topic(
    bootstrap: str, topic: str, count: int, within: float = 20.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """The first `count` messages of a topic (all partitions), failing after `within` seconds."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(within):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    records.extend(messages)
    finally:
        await consumer.stop()
    return records


async def published_ids(bootstrap: str, topic: str, within: float) -> Counter[str]:
    """How often each event id (its `ce_id` header) was published to `topic`, read to the
    end it had when this started; fails if that takes over `within` seconds."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    seen: Counter[str] = Counter()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        async with asyncio.timeout(within):
            while [p for p in partitions if await consumer.position(p) < ends[p]]:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    for message in messages:
                        seen.update(v.decode() for k, v in message.headers if k == "ce_id")
    finally:
        await consumer.stop()
    return seen
