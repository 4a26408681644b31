"""Pattern window state in Postgres: windows of keys that went quiet are swept away, and a
batch of events changes them as the same events one at a time do."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.patterns import PatternDetector
from adapters import pattern_windows
from adapters.consumer import ConsumedEvent
from adapters.event_store import PostgresEventStore
from adapters.schema import pattern_occurrences
from domain.patterns import Occurrence, Pattern
from domain.users import LockUser

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
FIVE = timedelta(minutes=5)


async def test_the_sweep_forgets_windows_two_windows_older_than_the_newest_event(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    pattern = Pattern(f"sweep-{uuid.uuid4()}", frozenset({"X"}), "k", 3, timedelta(minutes=5))

    async def never_called(command: LockUser) -> None:
        raise AssertionError(command)

    async with engine.begin() as conn:
        for key, minutes in (("quiet", 0), ("quiet", 1), ("recent", 12), ("busy", 20)):
            occurrence = Occurrence(T0 + timedelta(minutes=minutes), str(uuid.uuid4()))
            await pattern_windows.add(conn, pattern.name, key, occurrence)

    swept = await PatternDetector(store, [pattern], never_called).sweep(engine)

    async with engine.connect() as conn:
        rows = await conn.execute(
            select(pattern_occurrences.c.key).where(pattern_occurrences.c.pattern == pattern.name)
        )
        left = sorted(row.key for row in rows)
    assert swept == 2
    assert left == ["busy", "recent"]


def failure(user: str, minute: float, event_id: str | None = None) -> ConsumedEvent:
    return ConsumedEvent(
        event_id=event_id or str(uuid.uuid4()),
        type="UserLoginFailed",
        stream_id=user,
        stream_version=1,
        position=1,
        recorded_at=T0 + timedelta(minutes=minute),
        data={"user_id": user, "reason": "wrong password"},
        metadata={},
        topic="t",
        partition=0,
        offset=0,
    )


async def windows_of(engine: AsyncEngine, pattern: str) -> set[tuple[str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(pattern_occurrences.c.key, pattern_occurrences.c.event_id).where(
                pattern_occurrences.c.pattern == pattern
            )
        )
        return {(row.key, row.event_id) for row in rows}


async def test_a_batch_counts_its_events_as_one_at_a_time_would(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    run = uuid.uuid4().hex[:8]
    rapid, slow, mixed = (f"user-{run}-{name}" for name in ("rapid", "slow", "mixed"))
    repeated = str(uuid.uuid4())
    # Matches (two for `rapid`), expiries, a late event, an out-of-order one, a repeat, and
    # windows left open at the end; the keys interleave.
    events = [
        failure(rapid, 0), failure(slow, 0), failure(mixed, 10), failure(rapid, 1),
        failure(slow, 4), failure(mixed, 2), failure(rapid, 2), failure(mixed, 11, repeated),
        failure(slow, 8), failure(mixed, 11, repeated), failure(rapid, 3), failure(mixed, 9),
        failure(rapid, 3.5), failure(rapid, 4), failure(slow, 20), failure(rapid, 30),
    ]  # fmt: skip
    # The first few are stored before: the batch starts from windows that are not empty.
    before, batch = events[:3], events[3:]
    locks: dict[str, list[LockUser]] = {"alone": [], "batch": []}
    patterns = {
        side: Pattern(f"{side}-{run}", frozenset({"UserLoginFailed"}), "user_id", 3, FIVE)
        for side in locks
    }
    detectors = {
        side: PatternDetector(store, [patterns[side]], recorder(locks[side])) for side in locks
    }
    for detector in detectors.values():
        for event in before:
            async with engine.begin() as conn:
                await detector(conn, event)
    for event in batch:
        async with engine.begin() as conn:
            await detectors["alone"](conn, event)
    async with engine.begin() as conn:
        await detectors["batch"].handle_batch(conn, batch)

    alone = await windows_of(engine, patterns["alone"].name)
    together = await windows_of(engine, patterns["batch"].name)
    assert together == alone
    assert {key for key, _ in alone} == {rapid, slow}  # mixed: its match consumed all
    assert [(c.user_id, c.reason.replace("batch-", "")) for c in locks["batch"]] == [
        (c.user_id, c.reason.replace("alone-", "")) for c in locks["alone"]
    ]
    assert [c.user_id for c in locks["alone"]] == [rapid, mixed, rapid]


def recorder(into: list[LockUser]) -> Callable[[LockUser], Awaitable[None]]:
    async def record(command: LockUser) -> None:
        into.append(command)

    return record
