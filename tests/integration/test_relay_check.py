"""The relay's routine broker check runs beside its publishing: events appended meanwhile do
not wait for the broker's answer, and the answer still counts as it did before a page."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import activities.relay
from activities.relay import RelayActivities
from adapters import checkpoints
from adapters.broker_loss import TopicState
from adapters.event_store import PostgresEventStore
from adapters.kafka import KafkaEventPublisher
from adapters.relay_checkpoint import relay_status
from adapters.relay_ledger import PartitionAck
from domain.event_store import NO_STREAM, EncodedEvent, NewEvent, StreamAppend

PAGE = 10
EVENTS = 4
"""Events appended at a time: less than a page, so no page is read or published ahead."""
WITHIN = 10.0
CLUSTER = "check-cluster"


class SlowCheckBroker:
    """A one-partition broker whose checks, once `hold` is set, read the log's end and then
    answer only after two more pages were published (as a slow check does on a busy
    machine); `feed` runs once as the first of them is published. With `lose` set, the
    broker restarts empty before that answer."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.listed = True
        self.hold = False
        self.lose = False
        self.feed: Callable[[], Awaitable[None]] | None = None
        self.answered: list[TopicState] = []
        self.replaced = 0
        self._pages = 0
        self._published = asyncio.Condition()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def abort(self) -> None:
        pass

    async def create_topic(self) -> None:
        self.listed = True

    async def replace_topic(self) -> None:
        self.replaced += 1
        self.log = []
        self.listed = True

    async def inspect(self) -> TopicState:
        state = TopicState(CLUSTER, self.listed, {0: len(self.log)} if self.listed else {})
        if self.hold:
            self.hold = False
            answer_after = self._pages + 2
            # Bounded: a relay that waits for this answer before publishing times out here.
            async with asyncio.timeout(WITHIN), self._published:
                await self._published.wait_for(lambda: self._pages >= answer_after)
            if self.lose:
                self.log = []
                self.listed = False
                state = TopicState(CLUSTER, False)
        self.answered.append(state)
        return state

    async def publish_encoded(self, events: Sequence[EncodedEvent]) -> list[PartitionAck]:
        base = len(self.log)
        self.log += [str(event.event_id) for event in events]
        feed, self.feed = self.feed, None
        if feed is not None:
            await feed()
        async with self._published:
            self._pages += 1
            self._published.notify_all()
        return [PartitionAck(0, base, base + len(events), base, events[0].position)]


class Scenario:
    def __init__(self, engine: AsyncEngine, store: PostgresEventStore, database_url: str):
        self.engine = engine
        self.store = store
        self.checkpoint = f"relay-check-{uuid.uuid4().hex[:8]}"
        self.stream = f"check-{uuid.uuid4()}"
        self.appended: list[str] = []
        self.broker = SlowCheckBroker()
        self.publisher = cast(KafkaEventPublisher, self.broker)
        self.relay = RelayActivities(
            engine,
            store,
            database_url,
            lambda: self.publisher,
            batch_size=PAGE,
            checkpoint=self.checkpoint,
        )

    async def start_at_head(self) -> None:
        async with self.engine.begin() as conn:
            await checkpoints.load(conn, self.checkpoint)
            await checkpoints.advance(conn, self.checkpoint, 0, await self.store.head_position())

    async def append(self, count: int) -> None:
        events = [NewEvent(uuid.uuid4(), "CheckCounted", {"n": n}) for n in range(count)]
        expected = len(self.appended) if self.appended else NO_STREAM
        await self.store.append(StreamAppend(self.stream, events, expected))
        self.appended += [str(event.event_id) for event in events]

    async def batch(self) -> int:
        async with asyncio.timeout(WITHIN):
            return await self.relay.publish_batch(self.publisher)

    async def relay_until_caught_up(self) -> None:
        async with asyncio.timeout(WITHIN):
            while await self.relay.publish_batch(self.publisher) != 0:
                pass

    def ours(self) -> list[str]:
        wanted = set(self.appended)
        return [event_id for event_id in self.broker.log if event_id in wanted]


@pytest.fixture
async def scenario(
    engine: AsyncEngine,
    store: PostgresEventStore,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Scenario:
    # Every batch is due a check: the first of a run before it publishes (this one answers
    # at once), the others beside their pages.
    monkeypatch.setattr(activities.relay, "BROKER_CHECK_SECONDS", 0.0)
    scenario = Scenario(engine, store, database_url)
    await scenario.start_at_head()
    await scenario.append(EVENTS)
    assert await scenario.batch() == EVENTS
    return scenario


async def test_a_page_is_published_and_checkpointed_while_the_broker_check_runs(
    scenario: Scenario, engine: AsyncEngine
) -> None:
    await scenario.append(EVENTS)
    scenario.broker.hold = True
    scenario.broker.feed = lambda: scenario.append(EVENTS)
    # The check answers only once two pages were published (and the first checkpointed):
    # it runs beside them.
    assert await scenario.batch() == 2 * EVENTS
    # It answered with the log's end from before them, and their acks (recorded meanwhile,
    # past that end) were not taken for a loss.
    assert scenario.broker.answered[-1] == TopicState(CLUSTER, True, {0: EVENTS})
    assert (await relay_status(engine, scenario.checkpoint)).recoveries == 0
    assert scenario.broker.replaced == 0
    assert scenario.ours() == scenario.appended


async def test_a_loss_found_by_a_check_beside_pages_republishes_them_too(
    scenario: Scenario, engine: AsyncEngine
) -> None:
    await scenario.append(EVENTS)
    scenario.broker.hold = True
    scenario.broker.feed = lambda: scenario.append(EVENTS)
    scenario.broker.lose = True
    # The pages beside the check were acknowledged before the broker restarted empty; the
    # check's verdict, acted on after their checkpoints moved, goes back past them.
    assert await scenario.batch() < 0
    assert scenario.broker.replaced == 1
    assert (await relay_status(engine, scenario.checkpoint)).recoveries == 1
    await scenario.append(EVENTS)
    await scenario.relay_until_caught_up()
    assert scenario.ours() == scenario.appended
