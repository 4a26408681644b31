"""Pattern window state in Postgres: windows of keys that went quiet are swept away."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.patterns import PatternDetector
from adapters import pattern_windows
from adapters.event_store import PostgresEventStore
from adapters.schema import pattern_occurrences
from domain.patterns import Occurrence, Pattern
from domain.users import LockUser

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


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
