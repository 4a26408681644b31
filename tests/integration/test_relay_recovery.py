"""The relay never loses an event downstream, whatever the broker did: restarted empty,
frozen mid-batch, or rewound by an operator."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import activities.relay
from activities.relay import RelayActivities
from adapters import checkpoints, relay_ledger
from adapters.broker_loss import TopicState
from adapters.consumer import ConsumedEvent, EventConsumer
from adapters.event_store import PostgresEventStore
from adapters.kafka import KafkaEventPublisher
from adapters.relay_checkpoint import relay_status
from adapters.schema import relay_acks
from domain.event_store import NewEvent, StreamAppend
from runtime.cli import main
from runtime.config import Settings
from runtime.embedded.broker import EmbeddedBroker
from tests.kafka_support import FAST_GROUP

PARTITIONS = 3
OUTAGE_SECONDS = 5.0


class Scenario:
    """A relay with its own checkpoint (starting at the head) and the streams it appends to."""

    def __init__(
        self, engine: AsyncEngine, store: PostgresEventStore, bootstrap: str, database_url: str
    ) -> None:
        run = uuid.uuid4().hex[:8]
        self.engine = engine
        self.store = store
        self.bootstrap = bootstrap
        self.topic = f"recovery-{run}"
        self.checkpoint = f"relay-recovery-{run}"
        self.streams = [f"recovery-{run}-{i}" for i in range(12)]
        self.appended: dict[str, list[str]] = defaultdict(list)
        self.relay = RelayActivities(
            engine, store, database_url, self.publisher, batch_size=50, checkpoint=self.checkpoint
        )

    def publisher(self) -> KafkaEventPublisher:
        return KafkaEventPublisher(self.bootstrap, self.topic, PARTITIONS, request_timeout_ms=2000)

    async def start_at_head(self) -> None:
        async with self.engine.begin() as conn:
            await checkpoints.load(conn, self.checkpoint)
            await checkpoints.advance(conn, self.checkpoint, 0, await self.store.head_position())

    async def append(self, count: int) -> None:
        for n in range(count):
            stream = self.streams[n % len(self.streams)]
            event = NewEvent(uuid.uuid4(), "Counted", {"n": n})
            await self.store.append(StreamAppend(stream, [event], len(self.appended[stream])))
            self.appended[stream].append(str(event.event_id))

    async def position(self) -> int:
        async with self.engine.begin() as conn:
            return await checkpoints.load(conn, self.checkpoint)

    async def relay_until_caught_up(self, publisher: KafkaEventPublisher, within: float) -> None:
        """Publish until the checkpoint reached the head (a bounded wait on that condition)."""
        async with asyncio.timeout(within):
            while True:
                if await self.relay.publish_batch(publisher) != 0:
                    continue
                if await self.position() == await self.store.head_position():
                    return
                await asyncio.sleep(0.05)

    async def read_topic(
        self, within: float, at_least: int = 0
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """The topic's messages, once every appended event (and `at_least` messages) arrived."""
        wanted = {i for ids in self.appended.values() for i in ids}
        consumer = AIOKafkaConsumer(
            self.topic, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        records: list[ConsumerRecord[bytes, bytes]] = []
        seen: set[str] = set()
        try:
            async with asyncio.timeout(within):
                while not wanted <= seen or len(records) < at_least:
                    batch = await consumer.getmany(timeout_ms=500)
                    for messages in batch.values():
                        for record in messages:
                            records.append(record)
                            seen.add(dict(record.headers)["ce_id"].decode())
        finally:
            await consumer.stop()
        return records

    def assert_every_event_in_stream_order(
        self, records: list[ConsumerRecord[bytes, bytes]]
    ) -> None:
        """Per stream, the first copy of each event comes in version order, none missing."""
        first_copies: dict[str, list[str]] = defaultdict(list)
        for record in records:
            event_id = dict(record.headers)["ce_id"].decode()
            stream = (record.key or b"").decode()
            if event_id not in first_copies[stream]:
                first_copies[stream].append(event_id)
        for stream in self.streams:
            assert first_copies[stream] == self.appended[stream], stream


@pytest.fixture
async def scenario(
    engine: AsyncEngine, store: PostgresEventStore, own_broker: EmbeddedBroker, database_url: str
) -> Scenario:
    scenario = Scenario(engine, store, own_broker.bootstrap, database_url)
    await scenario.start_at_head()
    return scenario


@pytest.mark.parametrize("checks_before_publishing", [True, False], ids=["checked", "by-ack"])
async def test_a_broker_restarted_empty_is_refilled_with_every_event_in_stream_order(
    scenario: Scenario,
    own_broker: EmbeddedBroker,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    checks_before_publishing: bool,
) -> None:
    if not checks_before_publishing:
        # The broker restarts between two checks: the relay learns of it from the offsets
        # its next batch lands at (a topic the restarted broker takes writes for unlisted).
        monkeypatch.setattr(activities.relay, "BROKER_CHECK_SECONDS", 3600.0)
    processed: list[str] = []

    async def handler(conn: AsyncConnection, event: ConsumedEvent) -> None:
        processed.append(event.event_id)

    consumer = EventConsumer(
        engine,
        own_broker.bootstrap,
        scenario.topic,
        f"group-{scenario.topic}",
        f"handler-{scenario.topic}",
        handler,
        partitions=PARTITIONS,
        **FAST_GROUP,
    )
    publisher = scenario.publisher()
    await publisher.start()
    await consumer.start()
    try:
        await scenario.append(240)
        await scenario.relay_until_caught_up(publisher, within=60)
        async with asyncio.timeout(30):
            while len(set(processed)) < 240:
                await consumer.poll(0.5)

        await own_broker.stop()
        await own_broker.start()
        await scenario.append(60)
        await scenario.relay_until_caught_up(publisher, within=60)
        # The consumer's positions lie past the end of the refilled log: it reads it again.
        async with asyncio.timeout(30):
            while len(set(processed)) < 300:
                await consumer.poll(0.5)
    finally:
        await consumer.stop()
        await publisher.stop()

    scenario.assert_every_event_in_stream_order(await scenario.read_topic(within=30))
    assert sorted(set(processed)) == sorted(i for ids in scenario.appended.values() for i in ids)
    assert len(processed) == 300, "an event was handled twice"
    status = await relay_status(engine, scenario.checkpoint)
    assert status.recoveries == 1


async def test_a_frozen_broker_puts_no_stream_out_of_order(
    scenario: Scenario, own_broker: EmbeddedBroker
) -> None:
    await scenario.append(2000)
    head = await scenario.store.head_position()
    start = await scenario.position()
    publisher = scenario.publisher()
    await publisher.start()
    relaying = asyncio.create_task(scenario.relay_until_caught_up(publisher, within=120))
    try:
        async with asyncio.timeout(30):
            while True:
                if await scenario.position() > start:
                    break
                await asyncio.sleep(0.01)
        os.kill(own_broker.pid, signal.SIGSTOP)
        try:
            # The outage itself: long enough for requests (2 s timeout) to expire mid-page.
            await asyncio.sleep(OUTAGE_SECONDS)
            assert await scenario.position() < head, "the relay finished before the outage"
        finally:
            os.kill(own_broker.pid, signal.SIGCONT)
        await relaying
    finally:
        relaying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relaying
        await publisher.stop()

    scenario.assert_every_event_in_stream_order(await scenario.read_topic(within=30))


async def test_relay_rewind_moves_the_checkpoint_and_the_relay_publishes_again_from_there(
    scenario: Scenario,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publisher = scenario.publisher()
    await publisher.start()
    try:
        await scenario.append(36)
        await scenario.relay_until_caught_up(publisher, within=60)
        first = await scenario.read_topic(within=30)
        positions = sorted(int(dict(r.headers)["sagaline_position"]) for r in first)
        target = positions[11]

        monkeypatch.setenv("SAGALINE_DATABASE_URL", settings.require_database_url())
        with pytest.raises(SystemExit) as exited:
            await asyncio.to_thread(
                main,
                ["relay", "rewind", "--to", str(target), "--checkpoint", scenario.checkpoint],
            )
        assert exited.value.code == 0, capsys.readouterr().err
        assert f"rewound from position {positions[-1]} to {target}" in capsys.readouterr().out
        assert await scenario.position() == target

        await scenario.relay_until_caught_up(publisher, within=60)
    finally:
        await publisher.stop()

    records = await scenario.read_topic(within=30, at_least=36 + 24)
    everything = sorted(int(dict(r.headers)["sagaline_position"]) for r in records)
    assert len(records) == 36 + 24
    assert everything == sorted(positions + positions[12:]), "not republished after the target"
    scenario.assert_every_event_in_stream_order(records)


class HalfAnswering(KafkaEventPublisher):
    """A publisher whose broker, while `answers_half` is set, leaves parts of its answers
    out (as a Kafka cluster does mid leader election): every other check without a cluster
    id, the others without any partition's end. It counts the topic's replacements."""

    answers_half = False
    checks = 0
    replaced = 0

    async def inspect(self) -> TopicState:
        state = await super().inspect()
        if not self.answers_half:
            return state
        self.checks += 1
        if self.checks % 2:
            return TopicState(None, state.listed, state.ends)
        return TopicState(state.cluster_id, state.listed, {})

    async def replace_topic(self) -> None:
        self.replaced += 1
        await super().replace_topic()


async def test_the_relay_deletes_its_topic_only_when_the_broker_shows_it_lost_everything(
    scenario: Scenario,
    own_broker: EmbeddedBroker,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(activities.relay, "BROKER_CHECK_SECONDS", 0.0)
    publisher = HalfAnswering(
        scenario.bootstrap, scenario.topic, PARTITIONS, request_timeout_ms=2000
    )
    await publisher.start()
    try:
        await scenario.append(90)
        await scenario.relay_until_caught_up(publisher, within=60)
        publisher.answers_half = True
        await scenario.append(30)
        await scenario.relay_until_caught_up(publisher, within=60)
        async with asyncio.timeout(30):
            while publisher.checks < 6:
                await scenario.relay.publish_batch(publisher)
        assert publisher.replaced == 0, "the topic was deleted on answers missing"
        assert (await relay_status(engine, scenario.checkpoint)).recoveries == 0

        publisher.answers_half = False
        await own_broker.stop()
        await own_broker.start()
        await scenario.append(30)
        await scenario.relay_until_caught_up(publisher, within=60)
    finally:
        await publisher.stop()

    assert publisher.replaced == 1, "the broker came back empty, yet the topic was kept"
    assert (await relay_status(engine, scenario.checkpoint)).recoveries == 1
    scenario.assert_every_event_in_stream_order(await scenario.read_topic(within=30))


async def test_the_relays_ledger_stays_bounded_and_still_refills_a_broker_restarted_empty(
    scenario: Scenario,
    own_broker: EmbeddedBroker,
    engine: AsyncEngine,
    store: PostgresEventStore,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kept, every = 3, 4
    monkeypatch.setattr(relay_ledger, "KEPT_PAGES", kept)
    monkeypatch.setattr(activities.relay, "PRUNE_EVERY_PAGES", every)
    # Pages of 10 events: 240 events make 24 pages, each with a row per partition.
    scenario.relay = RelayActivities(
        engine,
        store,
        database_url,
        scenario.publisher,
        batch_size=10,
        checkpoint=scenario.checkpoint,
    )
    publisher = scenario.publisher()
    await publisher.start()
    try:
        await scenario.append(240)
        await scenario.relay_until_caught_up(publisher, within=90)
        async with engine.begin() as conn:
            query = select(func.count()).where(relay_acks.c.name == scenario.checkpoint)
            assert int((await conn.execute(query)).scalar_one()) <= PARTITIONS * (kept + every)

        await own_broker.stop()
        await own_broker.start()
        await scenario.append(30)
        await scenario.relay_until_caught_up(publisher, within=90)
    finally:
        await publisher.stop()

    assert (await relay_status(engine, scenario.checkpoint)).recoveries == 1
    scenario.assert_every_event_in_stream_order(await scenario.read_topic(within=30))
