"""Open pattern windows in Postgres: the occurrences each pattern still counts, per key.

A consumer's batch of messages touches many keys at once: `lock_and_load_many` holds and
reads them all in two statements, and `change_many` stores what the batch did to them in one
more, whatever the number of keys.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.database import driver_of
from adapters.schema import pattern_occurrences
from domain.patterns import Occurrence

_LOCK_KEY = text("SELECT pg_advisory_xact_lock(hashtextextended(:lock, 0))")
# The statements of a consumer's batch go to psycopg directly, prepared, and the lock and the
# read in one pipeline (one round trip; the read still starts after every lock is held, so it
# sees what the last holder of a key committed).
# In the order given (sorted by the caller), so two transactions locking overlapping keys
# take them in the same order and never deadlock. Arrays go in binary (`%b`), which psycopg
# writes several times faster than their text form.
_LOCK_KEYS = (
    "SELECT count(pg_advisory_xact_lock(hashtextextended(lock, 0)))"
    " FROM (SELECT lock FROM unnest(%b::text[]) WITH ORDINALITY AS l(lock, n)"
    " ORDER BY n) AS ordered"
)
_LOAD_KEYS = (
    "SELECT key, event_time, event_id FROM pattern_occurrences"
    " WHERE pattern = %s AND key = ANY(%b::text[])"
)
# What a batch did to its keys' windows, in one statement: the two sets never overlap.
_CHANGE_MANY = (
    "WITH gone AS (DELETE FROM pattern_occurrences AS o"
    " USING unnest(%(gone_keys)b::text[], %(gone_ids)b::text[]) AS g(key, event_id)"
    " WHERE o.pattern = %(pattern)s AND o.key = g.key AND o.event_id = g.event_id)"
    " INSERT INTO pattern_occurrences (pattern, key, event_id, event_time)"
    " SELECT %(pattern)s, a.key, a.event_id, a.event_time"
    " FROM unnest(%(keys)b::text[], %(ids)b::text[], %(times)b::timestamptz[])"
    " AS a(key, event_id, event_time)"
    " ON CONFLICT DO NOTHING"
)


def _lock_name(pattern: str, key: str) -> str:
    return f"{pattern}/{key}"


async def lock_and_load(conn: AsyncConnection, pattern: str, key: str) -> list[Occurrence]:
    """A key's stored occurrences, holding the key until the caller's transaction ends.

    Only one consumer owns a partition at a time, but during a group rebalance two may
    briefly handle the same key; the lock makes them take turns.
    """
    await conn.execute(_LOCK_KEY, {"lock": _lock_name(pattern, key)})
    rows = await conn.execute(
        select(pattern_occurrences.c.event_time, pattern_occurrences.c.event_id).where(
            pattern_occurrences.c.pattern == pattern, pattern_occurrences.c.key == key
        )
    )
    return [Occurrence(row.event_time, row.event_id) for row in rows]


async def lock_and_load_many(
    conn: AsyncConnection, pattern: str, keys: Collection[str]
) -> dict[str, list[Occurrence]]:
    """Several keys' stored occurrences, each key held (as `lock_and_load` holds one) until
    the caller's transaction ends; locks are taken in sorted order, reads after all of them."""
    ordered = sorted(set(keys))
    if not ordered:
        return {}
    driver = await driver_of(conn)
    async with driver.pipeline():
        await driver.execute(
            _LOCK_KEYS, ([_lock_name(pattern, key) for key in ordered],), prepare=True
        )
        loaded = await driver.execute(_LOAD_KEYS, (pattern, ordered), prepare=True)
    found: dict[str, list[Occurrence]] = {key: [] for key in ordered}
    for key, event_time, event_id in await loaded.fetchall():
        found[key].append(Occurrence(event_time, event_id))
    return found


async def change_many(
    conn: AsyncConnection,
    pattern: str,
    removed: Mapping[str, Collection[Occurrence]],
    added: Mapping[str, Collection[Occurrence]],
) -> None:
    """Forget and store occurrences of many keys: one statement, whatever their number."""
    gone = [(key, o.event_id) for key, occurrences in removed.items() for o in occurrences]
    new = [(key, o) for key, occurrences in added.items() for o in occurrences]
    if not gone and not new:
        return
    params = {
        "pattern": pattern,
        "gone_keys": [key for key, _ in gone],
        "gone_ids": [event_id for _, event_id in gone],
        "keys": [key for key, _ in new],
        "ids": [o.event_id for _, o in new],
        "times": [o.event_time for _, o in new],
    }
    await (await driver_of(conn)).execute(_CHANGE_MANY, params, prepare=True)


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
