"""Relay latency: at a steady 500 appended events/s, append commit -> consumption from Kafka.

Per round, for 8 s, 8 writer tasks in a child process (as the API and command workers are
other processes than the relay's) append single events on a fixed schedule (500 events/s in
all) to streams of their own, noting when each append returned (its commit) on the machine's
monotonic clock. A consumer (plain `AIOKafkaConsumer`, no group) in this process notes when
each event arrives, by `ce_id`.
Side by side in every round (order alternated), each onto a fresh 6-partition topic:
- the project: the relay loop as the worker runs it (`publish_batch`, sleeping on LISTEN/NOTIFY
  when idle, as in activities/following.py) between the store and the topic;
- baseline: the same schedule of sends, from a child process too, with a raw
  `AIOKafkaProducer(acks="all")` (no store): the broker's own produce -> consume latency floor.
The figure is the p99 over all events of the project's rounds; the goal is p99 <= 100 ms.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _kafka import bench_broker
from _support import (
    SAMPLE_DATA,
    SAMPLE_METADATA,
    SAMPLE_TYPE,
    bench_database,
    emit,
    median,
    progress,
    rounded,
    server_facts,
)
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.following import IDLE_WAKE_SECONDS
from activities.relay import RelayActivities
from adapters import checkpoints
from adapters.database import create_engine
from adapters.event_store import PostgresEventStore
from adapters.kafka import KafkaEventPublisher, ensure_topic
from adapters.notifications import EventNotifications
from domain.event_store import NewEvent, StreamAppend

RATE = 500
WRITERS = 8
SECONDS = 8.0
ROUNDS = 4
PARTITIONS = 6
GOAL_P99_MS = 100.0

Send = Callable[[int, int], Awaitable[str]]


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if values else 0.0


async def steady(send: Send) -> dict[str, float]:
    """Run the writers on their schedule; event id -> the moment its send completed."""
    done: dict[str, float] = {}
    interval = WRITERS / RATE
    start = time.perf_counter() + 0.05

    async def writer(index: int) -> None:
        n = 0
        while (due := start + index * interval / WRITERS + n * interval) < start + SECONDS:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            event_id = await send(index, n)
            done[event_id] = time.perf_counter()
            n += 1

    await asyncio.gather(*(writer(i) for i in range(WRITERS)))
    return done


def append_steadily(url: str, prefix: str) -> dict[str, float]:
    """In a child process: the scheduled appends; event id -> when its append returned."""

    async def run() -> dict[str, float]:
        engine = create_engine(url, pool_size=WRITERS)
        store = PostgresEventStore(engine)

        async def append(index: int, n: int) -> str:
            event = NewEvent(uuid.uuid4(), SAMPLE_TYPE, SAMPLE_DATA, SAMPLE_METADATA)
            await store.append(StreamAppend(f"latency-{prefix}-{index}", [event], n))
            return str(event.event_id)

        try:
            return await steady(append)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def send_steadily(bootstrap: str, topic: str) -> dict[str, float]:
    """In a child process: the scheduled raw sends; event id -> when its send was queued."""

    async def run() -> dict[str, float]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")

        async def send(index: int, n: int) -> str:
            event_id = str(uuid.uuid4())
            headers = [("ce_id", event_id.encode())]
            await producer.send(topic, key=f"s-{index}".encode(), value=b"{}", headers=headers)
            return event_id

        await producer.start()
        try:
            return await steady(send)
        finally:
            await producer.stop()

    return asyncio.run(run())


async def consume(consumer: AIOKafkaConsumer, arrived: dict[str, float]) -> None:
    while True:
        batch = await consumer.getmany(timeout_ms=100)
        now = time.perf_counter()
        for records in batch.values():
            for record in records:
                event_id = dict(record.headers).get("ce_id", b"").decode()
                arrived.setdefault(event_id, now)


async def measured(
    topic: str, bootstrap: str, run: Callable[[], Awaitable[dict[str, float]]]
) -> list[float]:
    """Latencies in ms of every event `run` sent, as seen by a consumer of `topic`."""
    await ensure_topic(bootstrap, topic, PARTITIONS)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=50
    )
    await consumer.start()
    arrived: dict[str, float] = {}
    reading = asyncio.create_task(consume(consumer, arrived))
    try:
        sent = await run()
        for _ in range(200):
            if len(arrived.keys() & sent.keys()) == len(sent):
                break
            await asyncio.sleep(0.05)
    finally:
        reading.cancel()
        await consumer.stop()
    missing = len(sent) - len(arrived.keys() & sent.keys())
    if missing:
        raise RuntimeError(f"{missing} events never arrived")
    return [(arrived[i] - sent[i]) * 1000 for i in sent]


async def relay_round(
    engine: AsyncEngine,
    store: PostgresEventStore,
    url: str,
    bootstrap: str,
    pool: ProcessPoolExecutor,
) -> list[float]:
    topic = f"bench-latency-{uuid.uuid4().hex[:8]}"
    checkpoint = f"relay-{topic}"
    async with engine.begin() as conn:
        await checkpoints.load(conn, checkpoint)
        await checkpoints.advance(conn, checkpoint, 0, await store.head_position())
    publisher = KafkaEventPublisher(bootstrap, topic, PARTITIONS)
    relay = RelayActivities(engine, store, url, lambda: publisher, checkpoint=checkpoint)
    loop = asyncio.get_running_loop()

    async def relaying() -> None:
        async with EventNotifications(url) as notifications:
            while True:
                if await relay.publish_batch(publisher) == 0:
                    await notifications.wait(IDLE_WAKE_SECONDS)

    async def run() -> dict[str, float]:
        task = asyncio.create_task(relaying())
        try:
            prefix = uuid.uuid4().hex[:8]
            sent = await loop.run_in_executor(pool, append_steadily, url, prefix)
            await asyncio.sleep(1.0)
            return sent
        finally:
            task.cancel()

    await publisher.start()
    try:
        return await measured(topic, bootstrap, run)
    finally:
        await publisher.stop()


async def raw_round(bootstrap: str, pool: ProcessPoolExecutor) -> list[float]:
    topic = f"bench-latency-raw-{uuid.uuid4().hex[:8]}"
    loop = asyncio.get_running_loop()
    return await measured(
        topic, bootstrap, lambda: loop.run_in_executor(pool, send_steadily, bootstrap, topic)
    )


async def main() -> None:
    async with bench_database() as url, bench_broker() as bootstrap:
        engine = create_engine(url, pool_size=4)
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        try:
            facts = await server_facts(engine)
            store = PostgresEventStore(engine)
            latencies: dict[str, list[float]] = {"project": [], "baseline": []}
            p99s: dict[str, list[float]] = {"project": [], "baseline": []}
            for index in range(ROUNDS):
                sides: list[tuple[str, Callable[[], Awaitable[list[float]]]]] = [
                    ("project", lambda: relay_round(engine, store, url, bootstrap, pool)),
                    ("baseline", lambda: raw_round(bootstrap, pool)),
                ]
                for name, side in sides if index % 2 == 0 else reversed(sides):
                    values = await side()
                    latencies[name].extend(values)
                    p99s[name].append(p(values, 99))
                progress(
                    f"round {index + 1}/{ROUNDS}: relay p99 {p99s['project'][-1]:.1f} ms,"
                    f" raw producer p99 {p99s['baseline'][-1]:.1f} ms"
                )
        finally:
            pool.shutdown()
            await engine.dispose()

    value = p(latencies["project"], 99)
    base = p(latencies["baseline"], 99)
    emit(
        {
            "bench": "relay_latency",
            "value": rounded(value),
            "unit": "ms (p99, append commit -> consumed)",
            "baseline": rounded(base),
            "ratio": rounded(value / base),
            "goal": GOAL_P99_MS,
            "goal_text": f"p99 ≤ {GOAL_P99_MS:g} ms",
            "goal_met": value <= GOAL_P99_MS,
            "p50_ms": rounded(p(latencies["project"], 50)),
            "p90_ms": rounded(p(latencies["project"], 90)),
            "max_ms": rounded(max(latencies["project"])),
            "baseline_p50_ms": rounded(p(latencies["baseline"], 50)),
            "round_p99_ms": {k: [round(v, 1) for v in vs] for k, vs in p99s.items()},
            "paired_ratio_median": rounded(
                median([a / b for a, b in zip(p99s["project"], p99s["baseline"], strict=True)])
            ),
            "events": len(latencies["project"]),
            "rate": RATE,
            "seconds_per_round": SECONDS,
            "rounds": ROUNDS,
            "baseline_kind": "AIOKafkaProducer(acks=all).send at the same schedule, no store",
            "broker": "embedded Tansu (memory)",
            **facts,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
