"""Open pattern windows in Postgres: the occurrences each pattern still counts, per key."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.schema import pattern_occurrences
from domain.patterns import Occurrence

_LOCK_KEY = text("SELECT pg_advisory_xact_lock(hashtextextended(:lock, 0))")


async def lock_and_load(conn: AsyncConnection, pattern: str, key: str) -> list[Occurrence]:
    """A key's stored occurrences, holding the key until the caller's transaction ends.

    Only one consumer owns a partition at a time, but during a group rebalance two may
    briefly handle the same key; the lock makes them take turns.
    """
    await conn.execute(_LOCK_KEY, {"lock": f"{pattern}/{key}"})
    rows = await conn.execute(
        select(pattern_occurrences.c.event_time, pattern_occurrences.c.event_id).where(
            pattern_occurrences.c.pattern == pattern, pattern_occurrences.c.key == key
        )
    )
    return [Occurrence(row.event_time, row.event_id) for row in rows]


async def add(conn: AsyncConnection, pattern: str, key: str, occurrence: Occurrence) -> None:
    """Store an occurrence in a key's window."""
    await conn.execute(
        insert(pattern_occurrences)
        .values(
            pattern=pattern,
            key=key,
            event_id=occurrence.event_id,
            event_time=occurrence.event_time,
        )
        .on_conflict_do_nothing()
    )


async def remove(
    conn: AsyncConnection, pattern: str, key: str, occurrences: Sequence[Occurrence]
) -> None:
    """Forget occurrences that expired or were consumed by a match."""
    if not occurrences:
        return
    await conn.execute(
        delete(pattern_occurrences).where(
            pattern_occurrences.c.pattern == pattern,
            pattern_occurrences.c.key == key,
            pattern_occurrences.c.event_id.in_([o.event_id for o in occurrences]),
        )
    )


async def newest(conn: AsyncConnection, pattern: str) -> datetime | None:
    """The latest event time stored for a pattern, over all keys."""
    query = select(func.max(pattern_occurrences.c.event_time)).where(
        pattern_occurrences.c.pattern == pattern
    )
    value = (await conn.execute(query)).scalar_one_or_none()
    return value if isinstance(value, datetime) else None


async def sweep(conn: AsyncConnection, pattern: str, before: datetime) -> int:
    """Delete a pattern's occurrences older than `before` (keys that went quiet)."""
    result = await conn.execute(
        delete(pattern_occurrences).where(
            pattern_occurrences.c.pattern == pattern,
            pattern_occurrences.c.event_time < before,
        )
    )
    return int(result.rowcount)
