"""A broker outage in the middle of 5,000 appends delays the relay, loses nothing.

The broker is frozen (SIGSTOP) after the first appends and stays frozen until appends were
made during the outage and the relay has failed to publish at least once; only then does it
resume, and the remaining appends follow. Nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.relay import RelayActivities
from adapters import checkpoints
from adapters.event_store import PostgresEventStore
from adapters.kafka import KafkaEventPublisher, PartitionAck
from domain.event_store import EncodedEvent, NewEvent, StreamAppend
from runtime.embedded.broker import EmbeddedBroker

EVENTS = 5_000
STREAMS = 50
WRITERS = 10
FREEZE_AFTER = 1_500
DURING_OUTAGE = 500
WITHIN = 120.0
"""Bound on each wait: generous for a loaded machine, finite so a hang fails the test."""


class WatchedPublisher(KafkaEventPublisher):
    """The relay's publisher; `failed` is set when the broker did not acknowledge a publish."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failed = asyncio.Event()

    async def publish_encoded(self, events: Sequence[EncodedEvent]) -> list[PartitionAck]:
        try:
            return await super().publish_encoded(events)
        except KafkaError:
            self.failed.set()
            raise


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
    own = set(streams)
    checkpoint = f"relay-outage-{run}"
    # This relay starts at the head, so it publishes this test's events, and only those
    # other tests may append meanwhile to the session's shared database.
    async with engine.begin() as conn:
        await checkpoints.load(conn, checkpoint)
        await checkpoints.advance(conn, checkpoint, 0, await store.head_position())

    def publisher() -> WatchedPublisher:
        return WatchedPublisher(kafka_bootstrap, topic, partitions=6, request_timeout_ms=3000)

    relay = RelayActivities(engine, store, database_url, publisher, checkpoint=checkpoint)
    active = publisher()
    await active.start()
    appended: dict[str, list[str]] = defaultdict(list)
    received: dict[str, list[tuple[int, str]]] = defaultdict(list)
    distinct: set[str] = set()
    arrivals: list[float] = []
    loop = asyncio.get_running_loop()
    frozen, resumed = asyncio.Event(), asyncio.Event()
    progress = asyncio.Condition()
    claimed = done = 0

    async def writer(index: int) -> None:
        nonlocal claimed, done
        mine = streams[index::WRITERS]
        for n in range(EVENTS // WRITERS):
            # Appends are numbered before they are made: the first FREEZE_AFTER happen before
            # the outage, the next DURING_OUTAGE during it, the rest after it.
            ticket, claimed = claimed, claimed + 1
            if ticket >= FREEZE_AFTER:
                await frozen.wait()
            if ticket >= FREEZE_AFTER + DURING_OUTAGE:
                await resumed.wait()
            stream = mine[n % len(mine)]
            event = NewEvent(uuid.uuid4(), "Counted", {"n": n})
            await store.append(StreamAppend(stream, [event], len(appended[stream])))
            appended[stream].append(str(event.event_id))
            async with progress:
                done += 1
                progress.notify_all()

    async def appends_reached(count: int) -> None:
        async with progress:
            await progress.wait_for(lambda: done >= count)

    async def relayed_everything() -> bool:
        async with engine.begin() as conn:
            position = await checkpoints.load(conn, checkpoint)
        return position == await store.head_position()

    async def relaying() -> None:
        while True:
            if await relay.publish_batch(active) > 0:
                continue
            if done == EVENTS and await relayed_everything():
                return
            await asyncio.sleep(0.02)  # pacing of an idle relay, as in production

    async def consuming(consumer: AIOKafkaConsumer) -> None:
        # Re-sent events arrive twice: only distinct ones of this test's streams say
        # everything has arrived.
        while len(distinct) < EVENTS:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    headers = dict(record.headers)
                    key = (record.key or b"").decode()
                    version = int(headers["sagaline_stream_version"])
                    event_id = headers["ce_id"].decode()
                    received[key].append((version, event_id))
                    if key in own:
                        distinct.add(event_id)
                    arrivals.append(loop.time())

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    frozen_at = resumed_at = 0.0
    tasks = [asyncio.create_task(relaying()), asyncio.create_task(consuming(consumer))]
    writers = asyncio.gather(*(writer(i) for i in range(WRITERS)))
    try:
        async with asyncio.timeout(WITHIN):
            await appends_reached(FREEZE_AFTER)
        os.kill(kafka_broker.pid, signal.SIGSTOP)
        frozen_at = loop.time()
        try:
            active.failed.clear()
            frozen.set()
            async with asyncio.timeout(WITHIN):
                await appends_reached(FREEZE_AFTER + DURING_OUTAGE)
                await active.failed.wait()
            relayed_while_frozen = await relayed_everything()
        finally:
            os.kill(kafka_broker.pid, signal.SIGCONT)
        resumed_at = loop.time()
        resumed.set()
        assert not relayed_while_frozen, "the relay kept up with a frozen broker"
        async with asyncio.timeout(WITHIN):
            await writers
            await asyncio.gather(*tasks)
    finally:
        for task in [*tasks, writers]:
            task.cancel()
        await asyncio.gather(*tasks, writers, return_exceptions=True)
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
