"""CEP throughput: events/s through the pattern detector's consumer, against a raw consumer.

Fixture (not timed): per round, a fresh 6-partition topic with 6,000 `UserLoginFailed`
messages for 600 new users, 10 each, as the relay publishes them (`KafkaEventPublisher`).
A tenth of the users fail a minute apart (3 matches each: a `SuspiciousUserActivity` appended,
a lock command issued); the others fail three minutes apart (no match; windows expire).
Both sides read that same topic, each in a consumer group of its own (order alternated):
- the project: `EventConsumer` running `PatternDetector` over `SUSPICIOUS_LOGINS` (window
  state in Postgres, committed with the messages' processed ids; the consumer given the
  detector's event types, as the service wires it). Lock commands go to a
  recorder instead of Temporal, so the figure is the detector's, not the workflow start's;
- baseline: a plain `AIOKafkaConsumer` in its own group, as a user would write the least
  consumer: `getmany` (500 records), the JSON body of each message decoded, the offsets
  committed after every fetch.
Each side is timed from its first message to its last. ratio = project / baseline; the goal
is 0.5. The process freezes its start-up objects for the garbage collector before the rounds,
as the service's processes do.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _kafka import bench_broker
from _support import bench_database, emit, median, progress, rounded, server_facts
from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from activities.patterns import PatternDetector
from adapters.consumer import ConsumedEvent, EventConsumer
from adapters.database import create_engine
from adapters.event_store import PostgresEventStore
from adapters.kafka import KafkaEventPublisher
from domain.event_store import RecordedEvent
from domain.patterns import PATTERNS
from domain.users import LockUser
from runtime.startup import freeze_startup_objects

USERS = 600
FAILURES = 10
RAPID_SHARE = 10
PARTITIONS = 6
ROUNDS = 4
GOAL_RATIO = 0.5
MAX_RECORDS = 500
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def login_failures(run: str) -> list[RecordedEvent]:
    events = []
    for user in range(USERS):
        user_id = f"user-{run}-{user}"
        spacing = 1 if user % RAPID_SHARE == 0 else 3
        for n in range(FAILURES):
            events.append(
                RecordedEvent(
                    position=user * FAILURES + n + 1,
                    stream_id=user_id,
                    version=n + 2,
                    event_id=uuid.uuid4(),
                    type="UserLoginFailed",
                    schema_version=1,
                    data={"user_id": user_id, "reason": "wrong password"},
                    metadata={},
                    recorded_at=BASE + timedelta(minutes=spacing * n),
                )
            )
    return events


async def fill_topic(bootstrap: str) -> tuple[str, int]:
    """A fresh topic holding a round's login failures; its name and message count."""
    run = uuid.uuid4().hex[:8]
    topic = f"bench-cep-{run}"
    events = login_failures(run)
    publisher = KafkaEventPublisher(bootstrap, topic, PARTITIONS)
    await publisher.start()
    try:
        await publisher.publish(events)
    finally:
        await publisher.stop()
    return topic, len(events)


class TimedDetector:
    """The detector, noting when it got its first message."""

    def __init__(self, detector: PatternDetector) -> None:
        self.detector = detector
        self.first: list[float] = []

    async def __call__(self, conn: AsyncConnection, event: ConsumedEvent) -> None:
        await self.handle_batch(conn, [event])

    async def handle_batch(self, conn: AsyncConnection, events: Sequence[ConsumedEvent]) -> None:
        if not self.first:
            self.first.append(time.perf_counter())
        await self.detector.handle_batch(conn, events)


async def detect(
    engine: AsyncEngine, bootstrap: str, topic: str, count: int, detector: PatternDetector
) -> tuple[float, int]:
    """Messages/s of the detector's consumer in a fresh group over the topic."""
    timed = TimedDetector(detector)
    group = f"bench-{uuid.uuid4().hex[:8]}"
    consumer = EventConsumer(
        engine, bootstrap, topic, group, group, timed, event_types=detector.event_types
    )
    await consumer.start()
    try:
        while consumer.stats.processed < count:
            await consumer.poll(0.5)
        elapsed = time.perf_counter() - timed.first[0]
    finally:
        await consumer.stop()
    return count / elapsed, consumer.stats.dead_lettered


async def raw_consume(bootstrap: str, topic: str, count: int) -> float:
    """Messages/s of a plain aiokafka consumer in a fresh group over the topic."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen = 0
        start = 0.0
        while seen < count:
            batch = await consumer.getmany(timeout_ms=500, max_records=MAX_RECORDS)
            if batch and not start:
                start = time.perf_counter()
            for records in batch.values():
                for record in records:
                    json.loads(record.value or b"")
                seen += len(records)
            if batch:
                await consumer.commit()
        elapsed = time.perf_counter() - start
    finally:
        await consumer.stop()
    return count / elapsed


async def main() -> None:
    async with bench_database() as url, bench_broker() as bootstrap:
        engine = create_engine(url, pool_size=PARTITIONS + 2)
        locks: list[LockUser] = []

        async def record_lock(command: LockUser) -> None:
            locks.append(command)

        detector = PatternDetector(PostgresEventStore(engine), PATTERNS, record_lock)
        try:
            facts = await server_facts(engine)
            # As the followers process that runs the detector does once it started
            # (runtime/serving.py): otherwise a full collection walking every module object
            # (30-70 ms here) falls in one side's timing or the other's, once a round.
            freeze_startup_objects()
            rates: dict[str, list[float]] = {"project": [], "baseline": []}
            for index in range(ROUNDS):
                topic, count = await fill_topic(bootstrap)

                for name in ("project", "baseline") if index % 2 == 0 else ("baseline", "project"):
                    if name == "project":
                        rate, dead = await detect(engine, bootstrap, topic, count, detector)
                        assert dead == 0
                    else:
                        rate = await raw_consume(bootstrap, topic, count)
                    rates[name].append(rate)
                progress(
                    f"round {index + 1}/{ROUNDS}: detector {rates['project'][-1]:.0f}/s,"
                    f" raw consumer {rates['baseline'][-1]:.0f}/s"
                )
        finally:
            await engine.dispose()

    expected_locks = ROUNDS * (USERS // RAPID_SHARE) * (FAILURES // 3)
    assert len(locks) == expected_locks, (len(locks), expected_locks)
    value = median(rates["project"])
    base = median(rates["baseline"])
    paired = median([p / b for p, b in zip(rates["project"], rates["baseline"], strict=True)])
    emit(
        {
            "bench": "cep_throughput",
            "value": rounded(value),
            "unit": "events/s",
            "baseline": rounded(base),
            "ratio": rounded(value / base),
            "goal": GOAL_RATIO,
            "goal_met": value / base >= GOAL_RATIO,
            "paired_ratio_median": rounded(paired),
            "events_per_round": USERS * FAILURES,
            "matches_per_round": expected_locks // ROUNDS,
            "partitions": PARTITIONS,
            "rounds": ROUNDS,
            "samples": {name: [round(r, 1) for r in values] for name, values in rates.items()},
            "baseline_kind": "AIOKafkaConsumer: getmany(500), JSON decoded, commit per fetch",
            "broker": "embedded Tansu (memory)",
            **facts,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
