"""Consumers survive a broker that lost data, and leave their group on every way out."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.consumer import ConsumedEvent, EventConsumer
from tests.kafka_support import FAST_GROUP, publish, recorded

PARTITIONS = 2


async def test_a_group_whose_offsets_lie_past_the_log_reads_what_the_topic_holds(
    engine: AsyncEngine, kafka_bootstrap: str
) -> None:
    topic, group, handler = (f"past-end-{uuid.uuid4()}" for _ in range(3))
    events = [recorded(f"s-{i % 4}", i // 4 + 1, "Counted", {"n": i}) for i in range(20)]
    await publish(kafka_bootstrap, topic, events, partitions=PARTITIONS)
    # Offsets a broker kept (or a group carried over) from a longer, lost log.
    committer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await committer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        committer.assign(partitions)
        await committer.commit(dict.fromkeys(partitions, 5_000))
    finally:
        await committer.stop()
    seen: list[str] = []

    async def handle(conn: AsyncConnection, event: ConsumedEvent) -> None:
        seen.append(event.event_id)

    consumer = EventConsumer(
        engine, kafka_bootstrap, topic, group, handler, handle, partitions=PARTITIONS, **FAST_GROUP
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            while len(seen) < len(events):
                await consumer.poll(0.5)
    finally:
        await consumer.stop()

    assert sorted(seen) == sorted(str(e.event_id) for e in events)


async def group_members(bootstrap: str, group: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (description,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    return [member[0] for group_row in description.groups for member in group_row[-1]]


async def test_a_consumer_cancelled_while_joining_leaves_its_partitions_to_the_next_member(
    engine: AsyncEngine, kafka_bootstrap: str
) -> None:
    topic, group, handler = (f"join-{uuid.uuid4()}" for _ in range(3))
    events = [recorded(f"s-{i % 4}", i // 4 + 1, "Counted", {"n": i}) for i in range(12)]
    await publish(kafka_bootstrap, topic, events, partitions=PARTITIONS)
    seen: list[str] = []

    async def handle(conn: AsyncConnection, event: ConsumedEvent) -> None:
        seen.append(event.event_id)

    def member() -> EventConsumer:
        return EventConsumer(
            engine,
            kafka_bootstrap,
            topic,
            group,
            handler,
            handle,
            partitions=PARTITIONS,
            **FAST_GROUP,
        )

    first = member()
    joining = asyncio.create_task(first.start())
    # Cancelled at the first point its group coordinator exists: it is joining the group.
    async with asyncio.timeout(20):
        while True:
            inner = first._consumer
            if inner is not None and inner._coordinator is not None:
                break
            await asyncio.sleep(0.001)
    joining.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await joining
    assert first._consumer is None and first._producer is None, "start left clients open"

    second = member()
    loop = asyncio.get_running_loop()
    await second.start()
    try:
        started = loop.time()
        async with asyncio.timeout(FAST_GROUP["session_timeout_ms"] / 1000):
            while len(seen) < len(events):
                await second.poll(0.2)
        read_within = loop.time() - started
        members = await group_members(kafka_bootstrap, group)
    finally:
        await second.stop()

    assert sorted(seen) == sorted(str(e.event_id) for e in events)
    assert read_within < FAST_GROUP["session_timeout_ms"] / 1000
    assert len(members) == 1, members
