"""The relay's publish of the next page, started ahead, never outlives the relay's work: once
the work (fenced: see activities/following.py) is cancelled, nothing of it publishes."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from typing import cast

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import activities.relay
from activities.relay import RelayActivities
from adapters import checkpoints
from adapters.broker_loss import TopicState
from adapters.event_store import PostgresEventStore
from adapters.kafka import KafkaEventPublisher
from adapters.relay_ledger import PartitionAck
from domain.event_store import NO_STREAM, EncodedEvent, NewEvent, StreamAppend
from tests.waiting import eventually

PAGE = 10
WITHIN = 10.0


class FreezingBroker:
    """A publisher whose broker acknowledges the first page, then stops answering (until
    `thaw`): publishes and checks wait, as on a frozen broker. It notes what it sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.publishing = 0
        self.checking = 0
        self.aborted = False
        self._ends: dict[int, int] = {}
        self._thawed = asyncio.Event()
        self._pages = 0

    def thaw(self) -> None:
        self._thawed.set()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True

    async def create_topic(self) -> None:
        pass

    async def inspect(self) -> TopicState:
        self.checking += 1
        try:
            if self._pages:
                await self._thawed.wait()
            return TopicState(None, True, {})
        finally:
            self.checking -= 1

    async def publish_encoded(self, events: Sequence[EncodedEvent]) -> list[PartitionAck]:
        self.publishing += 1
        try:
            self._pages += 1
            if self._pages > 1:
                await self._thawed.wait()
            base = self._ends.get(0, 0)
            self._ends[0] = base + len(events)
            self.sent += [str(event.event_id) for event in events]
            return [PartitionAck(0, base, base + len(events), base, events[0].position)]
        finally:
            self.publishing -= 1


async def test_cancelling_the_relay_while_it_publishes_ahead_leaves_nothing_publishing(
    engine: AsyncEngine,
    store: PostgresEventStore,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The broker is checked before every page, as it is at least once a second.
    monkeypatch.setattr(activities.relay, "BROKER_CHECK_SECONDS", 0.0)
    checkpoint = f"relay-ahead-{uuid.uuid4().hex[:8]}"
    head = await store.head_position()
    async with engine.begin() as conn:
        await checkpoints.load(conn, checkpoint)
        await checkpoints.advance(conn, checkpoint, 0, head)
    events = [NewEvent(uuid.uuid4(), "AheadCounted", {"n": n}) for n in range(3 * PAGE)]
    await store.append(StreamAppend(f"ahead-{uuid.uuid4()}", events, NO_STREAM))
    broker = FreezingBroker()
    publisher = cast(KafkaEventPublisher, broker)
    relay = RelayActivities(
        engine, store, database_url, lambda: publisher, batch_size=PAGE, checkpoint=checkpoint
    )

    async def work() -> None:
        # The relay's fenced work, as `follow` runs it: one batch after another.
        while True:
            await relay.publish_batch(publisher)

    async def first_page_committed() -> bool:
        async with engine.begin() as conn:
            return await checkpoints.load(conn, checkpoint) > head

    working = asyncio.create_task(work())
    try:
        await eventually(first_page_committed, WITHIN, "the first page's checkpoint moved")
        assert broker.publishing == 1, "the second page is being published ahead"

        working.cancel()
        done, _ = await asyncio.wait({working}, timeout=WITHIN)
        assert working in done, "the cancelled work ended while the broker stayed frozen"
        assert broker.publishing == 0, "a publish of the cancelled work is still running"
        assert broker.checking == 0
        assert broker.aborted, "the cancelled work dropped what the producer still held"
        assert broker.sent == [str(event.event_id) for event in events[:PAGE]]
    finally:
        broker.thaw()
        working.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await working
