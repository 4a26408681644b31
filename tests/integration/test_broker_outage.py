"""A ten-second broker outage in the middle of 5,000 appends delays the relay, loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections import defaultdict

from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.relay import RelayActivities
from adapters import checkpoints
from adapters.event_store import PostgresEventStore
from adapters.kafka import KafkaEventPublisher
from domain.event_store import NewEvent, StreamAppend
from runtime.embedded.broker import EmbeddedBroker

EVENTS = 5_000
STREAMS = 50
WRITERS = 10
OUTAGE_SECONDS = 10.0
FREEZE_AFTER = 1_500


async def test_a_frozen_broker_delays_the_relay_and_the_consumer_gets_every_event_in_order(
    engine: AsyncEngine,
    store: PostgresEventStore,
    kafka_broker: EmbeddedBroker,
    kafka_bootstrap: str,
    database_url: str,
) -> None:
    run = uuid.uuid4().hex[:8]
    topic = f"outage-{run}"
    streams = [f"outage-{run}-{i}" for i in range(STREAMS)]
    checkpoint = f"relay-outage-{run}"
    # This relay starts at the head, so it publishes this test's events only.
    async with engine.begin() as conn:
        await checkpoints.load(conn, checkpoint)
        await checkpoints.advance(conn, checkpoint, 0, await store.head_position())

    def publisher() -> KafkaEventPublisher:
        return KafkaEventPublisher(kafka_bootstrap, topic, partitions=6, request_timeout_ms=3000)

    relay = RelayActivities(engine, store, database_url, publisher, checkpoint=checkpoint)
    active = publisher()
    await active.start()
    appended: dict[str, list[str]] = defaultdict(list)
    received: dict[str, list[tuple[int, str]]] = defaultdict(list)
    arrivals: list[float] = []
    loop = asyncio.get_running_loop()
    appends_done = asyncio.Event()
    halfway = asyncio.Event()
    count = 0

    async def writer(index: int) -> None:
        nonlocal count
        mine = streams[index::WRITERS]
        for n in range(EVENTS // WRITERS):
            stream = mine[n % len(mine)]
            event = NewEvent(uuid.uuid4(), "Counted", {"n": n})
            await store.append(StreamAppend(stream, [event], len(appended[stream])))
            appended[stream].append(str(event.event_id))
            count += 1
            if count == FREEZE_AFTER:
                halfway.set()
            await asyncio.sleep(0.02)  # about 400 appends/s: appends outlast the outage

    async def relayed_everything() -> bool:
        async with engine.begin() as conn:
            position = await checkpoints.load(conn, checkpoint)
        return position == await store.head_position()

    async def relaying() -> None:
        while True:
            if await relay.publish_batch(active) > 0:
                continue
            if appends_done.is_set() and await relayed_everything():
                return
            await asyncio.sleep(0.02)

    async def consuming(consumer: AIOKafkaConsumer) -> None:
        while sum(len(v) for v in received.values()) < EVENTS or not appends_done.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    headers = dict(record.headers)
                    key = (record.key or b"").decode()
                    version = int(headers["sagaline_stream_version"])
                    received[key].append((version, headers["ce_id"].decode()))
                    arrivals.append(loop.time())

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    frozen_at = resumed_at = 0.0
    tasks = [asyncio.create_task(relaying()), asyncio.create_task(consuming(consumer))]
    try:
        writers = asyncio.gather(*(writer(i) for i in range(WRITERS)))
        await halfway.wait()
        os.kill(kafka_broker.pid, signal.SIGSTOP)
        frozen_at = loop.time()
        try:
            await asyncio.sleep(OUTAGE_SECONDS)
        finally:
            os.kill(kafka_broker.pid, signal.SIGCONT)
        resumed_at = loop.time()
        assert count < EVENTS, "the appends ended before the outage did"
        await writers
        appends_done.set()
        async with asyncio.timeout(60):
            await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await consumer.stop()
        await active.stop()

    assert not [t for t in arrivals if frozen_at + 1 < t < resumed_at], "broker was not cut off"
    for stream in streams:
        versions_to_ids: dict[int, set[str]] = defaultdict(set)
        first_seen: list[int] = []
        for version, event_id in received[stream]:
            if not versions_to_ids[version]:
                first_seen.append(version)
            versions_to_ids[version].add(event_id)
        assert first_seen == list(range(1, len(appended[stream]) + 1)), stream
        assert [versions_to_ids[v] for v in first_seen] == [{i} for i in appended[stream]]
    assert sum(len(ids) for ids in appended.values()) == EVENTS
