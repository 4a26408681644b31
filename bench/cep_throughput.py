"""CEP throughput: events/s through the pattern detector's consumer.

Fixture (not timed): per round, a fresh 6-partition topic with 6,000 `UserLoginFailed`
messages for 600 new users, 10 each, as the relay publishes them (`KafkaEventPublisher`).
A tenth of the users fail a minute apart (3 matches each: a `SuspiciousUserActivity` appended,
a lock command issued); the others fail three minutes apart (no match; windows expire).
Side by side in every round (order alternated), each in a consumer group of its own:
- the project: `EventConsumer` running `PatternDetector` over `SUSPICIOUS_LOGINS` (window
  state in Postgres, one transaction per message with its processed id). Lock commands go to
  a recorder instead of Temporal, so the figure is the detector's, not the workflow start's;
- baseline: the same `EventConsumer` with a handler that does nothing: the framework's own
  cost (fetch, one transaction per message recording the processed id, offset commits).
Each side is timed from its first handled message to its last. ratio = project / baseline.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _kafka import bench_broker
from _support import bench_database, emit, median, progress, rounded, server_facts
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from activities.patterns import PatternDetector
from adapters.consumer import ConsumedEvent, EventConsumer, Handler
from adapters.database import create_engine
from adapters.event_store import PostgresEventStore
from adapters.kafka import KafkaEventPublisher
from domain.event_store import RecordedEvent
from domain.patterns import PATTERNS
from domain.users import LockUser

USERS = 600
FAILURES = 10
RAPID_SHARE = 10
PARTITIONS = 6
ROUNDS = 4
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


async def consume(engine: AsyncEngine, bootstrap: str, handler: Handler) -> tuple[float, int]:
    """Messages/s of a fresh group over a freshly filled topic."""
    run = uuid.uuid4().hex[:8]
    topic = f"bench-cep-{run}"
    events = login_failures(run)
    publisher = KafkaEventPublisher(bootstrap, topic, PARTITIONS)
    await publisher.start()
    try:
        await publisher.publish(events)
    finally:
        await publisher.stop()
    first: list[float] = []

    async def timed(conn: AsyncConnection, event: ConsumedEvent) -> None:
        if not first:
            first.append(time.perf_counter())
        await handler(conn, event)

    consumer = EventConsumer(engine, bootstrap, topic, topic, f"bench-{run}", timed)
    await consumer.start()
    try:
        while consumer.stats.processed < len(events):
            await consumer.poll(0.5)
        elapsed = time.perf_counter() - first[0]
    finally:
        await consumer.stop()
    return len(events) / elapsed, consumer.stats.dead_lettered


async def main() -> None:
    async with bench_database() as url, bench_broker() as bootstrap:
        engine = create_engine(url, pool_size=PARTITIONS + 2)
        locks: list[LockUser] = []

        async def record_lock(command: LockUser) -> None:
            locks.append(command)

        async def nothing(conn: AsyncConnection, event: ConsumedEvent) -> None:
            return None

        detector = PatternDetector(PostgresEventStore(engine), PATTERNS, record_lock)
        try:
            facts = await server_facts(engine)
            rates: dict[str, list[float]] = {"project": [], "baseline": []}
            for index in range(ROUNDS):
                sides = [("project", detector), ("baseline", nothing)]
                for name, handler in sides if index % 2 == 0 else reversed(sides):
                    rate, dead = await consume(engine, bootstrap, handler)
                    assert dead == 0
                    rates[name].append(rate)
                progress(
                    f"round {index + 1}/{ROUNDS}: detector {rates['project'][-1]:.0f}/s,"
                    f" no-op handler {rates['baseline'][-1]:.0f}/s"
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
            "goal": None,
            "goal_met": None,
            "paired_ratio_median": rounded(paired),
            "events_per_round": USERS * FAILURES,
            "matches_per_round": expected_locks // ROUNDS,
            "partitions": PARTITIONS,
            "rounds": ROUNDS,
            "samples": {name: [round(r, 1) for r in values] for name, values in rates.items()},
            "baseline_kind": "the same EventConsumer with a no-op handler",
            "broker": "embedded Tansu (memory)",
            **facts,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
