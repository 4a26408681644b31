"""A cancelled relay run sends nothing more: what its producer still held is dropped, not
flushed. Another instance may be publishing from the checkpoint by then (a lost fence
cancels the run), and a late flush would land after its events, out of order."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import ActivityEnvironment

from activities.following import FollowInput
from activities.relay import RelayActivities
from adapters import checkpoints
from adapters.broker_loss import TopicState
from adapters.event_store import PostgresEventStore
from adapters.kafka import KafkaEventPublisher, ensure_topic
from domain.event_store import NO_STREAM, NewEvent, StreamAppend
from runtime.embedded.broker import EmbeddedBroker
from tests.waiting import eventually

EVENTS = 10
WITHIN = 20.0
REQUEST_TIMEOUT_MS = 60_000
"""Far beyond every wait here: the producer would go on retrying the page all along."""


class HandingPublisher(KafkaEventPublisher):
    """The relay's publisher; `checked` is set once the broker answered a check, `handed`
    once a publish handed a batch to the producer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checked = asyncio.Event()
        self.handed = asyncio.Event()
        send_batch = self._producer.send_batch

        async def noted(*args: Any, **kwargs: Any) -> Any:
            delivery = await send_batch(*args, **kwargs)
            self.handed.set()
            return delivery

        self._producer.send_batch = noted

    async def inspect(self) -> TopicState:
        state = await super().inspect()
        self.checked.set()
        return state


async def test_a_cancelled_relay_run_drops_what_its_producer_still_holds(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str, own_broker: EmbeddedBroker
) -> None:
    run = uuid.uuid4().hex[:8]
    topic = f"abort-{run}"
    checkpoint = f"relay-abort-{run}"
    async with engine.begin() as conn:
        await checkpoints.load(conn, checkpoint)
        await checkpoints.advance(conn, checkpoint, 0, await store.head_position())
    publishers: list[HandingPublisher] = []

    def publisher() -> HandingPublisher:
        made = HandingPublisher(
            own_broker.bootstrap, topic, partitions=1, request_timeout_ms=REQUEST_TIMEOUT_MS
        )
        publishers.append(made)
        return made

    relay = RelayActivities(
        engine, store, database_url, publisher, batch_size=EVENTS, checkpoint=checkpoint
    )
    environment = ActivityEnvironment()
    running = asyncio.create_task(environment.run(relay.relay_events, FollowInput(WITHIN * 3)))
    try:

        async def checked() -> bool:
            return bool(publishers) and publishers[0].checked.is_set()

        # The check a run starts with is over: the next page goes out before any check.
        await eventually(checked, WITHIN, "the relay checked the broker")
        # The broker goes away: the page the relay publishes now stays in its producer,
        # which keeps trying to reach it.
        await own_broker.stop()
        events = [NewEvent(uuid.uuid4(), "AbortCounted", {"n": n}) for n in range(EVENTS)]
        await store.append(StreamAppend(f"abort-{run}", events, NO_STREAM))
        async with asyncio.timeout(WITHIN):
            await publishers[0].handed.wait()

        environment.cancel()
        # The broker is back, the topic too, as another instance would create it: whatever
        # the cancelled run still sent would land there.
        await own_broker.start()
        await ensure_topic(own_broker.bootstrap, topic, 1)
        done, _ = await asyncio.wait({running}, timeout=WITHIN)
        assert running in done, "the cancelled run ended"
        assert running.cancelled() or isinstance(running.exception(), asyncio.CancelledError)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running

    async with engine.begin() as conn:
        assert await checkpoints.load(conn, checkpoint) < await store.head_position()
    assert await log_end(own_broker.bootstrap, topic) == 0, (
        "the cancelled run's page reached the broker after the cancellation"
    )


async def log_end(bootstrap: str, topic: str) -> int:
    """The end of the topic's one partition's log, as the broker reports it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        async with asyncio.timeout(WITHIN):
            return int((await consumer.end_offsets([partition]))[partition])
    finally:
        await consumer.stop()
