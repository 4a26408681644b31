"""Relay throughput: events/s from the store to the broker, against a raw aiokafka producer.

Fixture (not timed): 20,000 events on 200 streams, appended 100 at a time.
Side by side in every round (order alternated), each onto a fresh 6-partition topic:
- the project: `RelayActivities.publish_batch` in a loop from position 0 until it returns 0
  (its batch size, 1000, and its publisher, `KafkaEventPublisher`, as the worker wires them):
  the gap-safe `read_all`, the CloudEvents encoding, per-partition batches, acks=all, and the
  checkpoint moved after every acknowledged batch;
- baseline: a plain `AIOKafkaProducer(acks="all")` sending the same messages (key, value and
  headers encoded before the clock starts) with `send()` one by one, then awaiting every
  delivery.
ratio = project / baseline; the goal is 0.8.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _kafka import append_events, bench_broker
from _support import bench_database, emit, median, progress, rounded, server_facts
from aiokafka import AIOKafkaProducer

from activities.relay import RelayActivities
from adapters.database import create_engine
from adapters.event_store import PostgresEventStore
from adapters.kafka import KafkaEventPublisher, cloudevent_headers, ensure_topic, message_value
from domain.event_store import RecordedEvent

EVENTS = 20_000
STREAMS = 200
PARTITIONS = 6
ROUNDS = 5
GOAL_RATIO = 0.8


async def all_events(store: PostgresEventStore) -> list[RecordedEvent]:
    events: list[RecordedEvent] = []
    position = 0
    while True:
        page = await store.read_all(position, 5_000)
        if page.next_position == position:
            return events
        events.extend(page.events)
        position = page.next_position


async def relay_round(engine: object, store: PostgresEventStore, url: str, bootstrap: str) -> float:
    topic = f"bench-relay-{uuid.uuid4().hex[:8]}"

    def publisher() -> KafkaEventPublisher:
        return KafkaEventPublisher(bootstrap, topic, PARTITIONS)

    relay = RelayActivities(
        engine,  # type: ignore[arg-type]
        store,
        url,
        publisher,
        checkpoint=f"relay-bench-{topic}",
    )
    active = publisher()
    await active.start()
    try:
        start = time.perf_counter()
        moved = 0
        while step := await relay.publish_batch(active):
            moved += step
        elapsed = time.perf_counter() - start
    finally:
        await active.stop()
    assert moved == EVENTS, moved
    return moved / elapsed


async def raw_round(events: list[RecordedEvent], bootstrap: str) -> float:
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    await ensure_topic(bootstrap, topic, PARTITIONS)
    messages = [
        (e.stream_id.encode(), message_value(e), cloudevent_headers(e, "sagaline")) for e in events
    ]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"warm-up")
        start = time.perf_counter()
        deliveries = [
            await producer.send(topic, key=key, value=value, headers=headers)
            for key, value, headers in messages
        ]
        await asyncio.gather(*deliveries)
        elapsed = time.perf_counter() - start
    finally:
        await producer.stop()
    return len(messages) / elapsed


async def main() -> None:
    async with bench_database() as url, bench_broker() as bootstrap:
        engine = create_engine(url, pool_size=4)
        try:
            facts = await server_facts(engine)
            store = PostgresEventStore(engine)
            progress(f"appending {EVENTS} events")
            await append_events(store, EVENTS, STREAMS)
            events = await all_events(store)
            rates: dict[str, list[float]] = {"project": [], "baseline": []}
            for index in range(ROUNDS):
                sides: list[tuple[str, Callable[[], Awaitable[float]]]] = [
                    ("project", lambda: relay_round(engine, store, url, bootstrap)),
                    ("baseline", lambda: raw_round(events, bootstrap)),
                ]
                for name, side in sides if index % 2 == 0 else reversed(sides):
                    rates[name].append(await side())
                progress(
                    f"round {index + 1}/{ROUNDS}: relay {rates['project'][-1]:.0f}/s,"
                    f" raw producer {rates['baseline'][-1]:.0f}/s"
                )
        finally:
            await engine.dispose()

    value = median(rates["project"])
    base = median(rates["baseline"])
    paired = median([p / b for p, b in zip(rates["project"], rates["baseline"], strict=True)])
    emit(
        {
            "bench": "relay_throughput",
            "value": rounded(value),
            "unit": "events/s",
            "baseline": rounded(base),
            "ratio": rounded(value / base),
            "goal": GOAL_RATIO,
            "goal_met": value / base >= GOAL_RATIO,
            "paired_ratio_median": rounded(paired),
            "events": EVENTS,
            "partitions": PARTITIONS,
            "rounds": ROUNDS,
            "samples": {name: [round(r, 1) for r in values] for name, values in rates.items()},
            "baseline_kind": "AIOKafkaProducer(acks=all).send per message, then await all",
            "broker": "embedded Tansu (memory)",
            **facts,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
