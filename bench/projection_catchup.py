"""Full catch-up of UsersProjection over 200,000 user events, against the append rate.

Fixture (not timed): 50,000 users, each with UserRegistered + 3 UserEmailChanged (all emails
unique), COPied into `events` (positions drawn from the table's identity) with matching
`streams` and `unique_keys` rows. Users come in blocks of 1,000, each block's events version
by version, so any prefix of the global order mixes registrations and changes like the whole.

Measured:
- batch-size trials: the first 10,000 events with a few `batch_size`s (projection reset in
  between); the fastest is used for the full run;
- the project: `Projector(engine, store, UsersProjection(), batch_size).run_batch()` in a loop
  from position 0 until it returns 0, in events/s (the checkpoint's movement over time);
- baseline: the append_concurrent rate (8 writers, single-event appends at exact versions,
  the same function as bench/append_concurrent.py), on a second fresh database on the same
  server, in rounds interleaved with the trials and after the full catch-up.
ratio = catch-up rate / append rate; the goal is 3.0.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from _support import (
    bench_database,
    emit,
    median,
    progress,
    rounded,
    server_facts,
    store_append_round,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.database import create_engine, libpq_url
from adapters.event_store import PostgresEventStore
from domain.event_store import EventPage, RecordedEvent
from domain.events import to_data
from domain.users import EMAIL_SCOPE, UserEmailChanged, UserRegistered
from projections.projector import Projector, checkpoint_name
from projections.users import UsersProjection

USERS = 50_000
CHANGES_PER_USER = 3
EVENTS = USERS * (1 + CHANGES_PER_USER)
BLOCK = 1_000
TRIAL_EVENTS = 10_000
TRIAL_BATCH_SIZES = (100, 500, 2000)
APPEND_SECONDS = 1.5
GOAL_RATIO = 3.0
METADATA = json.dumps({"actor": "bench"})


def email(user: int, change: int) -> str:
    return f"user{user}.c{change}@example.com"


def fixture_rows() -> list[tuple[uuid.UUID, str, int, str, int, str, str]]:
    """The events in global order: per block of users, version by version."""
    rows: list[tuple[uuid.UUID, str, int, str, int, str, str]] = []
    for block in range(0, USERS, BLOCK):
        for change in range(CHANGES_PER_USER + 1):
            for user in range(block, block + BLOCK):
                stream_id = f"user-{user}"
                if change == 0:
                    event: UserRegistered | UserEmailChanged = UserRegistered(
                        stream_id, email(user, 0), f"User {user}", "argon2$bench"
                    )
                else:
                    event = UserEmailChanged(
                        stream_id, email(user, change - 1), email(user, change)
                    )
                data = json.dumps(to_data(event))
                kind = type(event).__name__
                rows.append((uuid.uuid4(), stream_id, change + 1, kind, 1, data, METADATA))
    return rows


async def load_fixture(url: str) -> None:
    """COPY the events, streams and unique keys, then VACUUM ANALYZE (as a settled table)."""
    rows = await asyncio.to_thread(fixture_rows)
    async with await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True) as conn:
        async with conn.transaction(), conn.cursor() as cur:
            columns = "event_id, stream_id, version, type, schema_version, data, metadata"
            async with cur.copy(f"COPY events ({columns}) FROM STDIN") as copy:
                for row in rows:
                    await copy.write_row(row)
            async with cur.copy("COPY streams (stream_id, version) FROM STDIN") as copy:
                for user in range(USERS):
                    await copy.write_row((f"user-{user}", CHANGES_PER_USER + 1))
            async with cur.copy("COPY unique_keys (scope, value, stream_id) FROM STDIN") as copy:
                for user in range(USERS):
                    await copy.write_row(
                        (EMAIL_SCOPE, email(user, CHANGES_PER_USER), f"user-{user}")
                    )
        for table in ("events", "streams", "unique_keys"):
            await conn.execute(f"VACUUM ANALYZE {table}")


class TimedStore:
    """The event store, timing `read_all` (the projector's only call to it)."""

    def __init__(self, store: PostgresEventStore) -> None:
        self.store = store
        self.seconds = 0.0

    async def read_all(
        self,
        after_position: int,
        limit: int,
        types: Sequence[str] | None = None,
        wait_seconds: float = 1.0,
    ) -> EventPage:
        start = time.perf_counter()
        try:
            return await self.store.read_all(after_position, limit, types, wait_seconds)
        finally:
            self.seconds += time.perf_counter() - start

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


class TimedProjection:
    """UsersProjection, timing `apply_batch` (the projector's call per batch) and `apply`
    (its call per event when a batch fails); everything else is the projection's own."""

    def __init__(self) -> None:
        self.inner = UsersProjection()
        self.name = self.inner.name
        self.event_types = self.inner.event_types
        self.seconds = 0.0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def apply(self, conn: AsyncConnection, event: RecordedEvent) -> None:
        start = time.perf_counter()
        try:
            await self.inner.apply(conn, event)
        finally:
            self.seconds += time.perf_counter() - start

    async def apply_batch(self, conn: AsyncConnection, events: Sequence[RecordedEvent]) -> None:
        start = time.perf_counter()
        try:
            await self.inner.apply_batch(conn, events)
        finally:
            self.seconds += time.perf_counter() - start


async def reset_projection(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE users"))
        await conn.execute(
            text("DELETE FROM checkpoints WHERE name = :name"),
            {"name": checkpoint_name(UsersProjection.name)},
        )
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.execute(text("VACUUM ANALYZE users"))


async def catch_up(
    engine: AsyncEngine, store: PostgresEventStore, batch_size: int, stop_after: int | None
) -> dict[str, float]:
    """Run batches from the projection's checkpoint until up to date (or past `stop_after`)."""
    timed_store = TimedStore(store)
    projection = TimedProjection()
    projector = Projector(engine, timed_store, projection, batch_size=batch_size)  # type: ignore[arg-type]
    moved = 0
    batches = 0
    start = time.perf_counter()
    while stop_after is None or moved < stop_after:
        step = await projector.run_batch()
        if step == 0:
            break
        moved += step
        batches += 1
    elapsed = time.perf_counter() - start
    return {
        "events": moved,
        "batches": batches,
        "seconds": elapsed,
        "rate": moved / elapsed,
        "read_share": timed_store.seconds / elapsed,
        "apply_share": projection.seconds / elapsed,
    }


async def main() -> None:
    async with bench_database() as url, bench_database() as append_url:
        engine = create_engine(url, pool_size=4)
        append_engine = create_engine(append_url, pool_size=8)
        try:
            facts = await server_facts(engine)
            append_store = PostgresEventStore(append_engine)
            await store_append_round(append_store, 0.3)
            append_rates: list[float] = []

            async def append_round() -> None:
                append_rates.append(await store_append_round(append_store, APPEND_SECONDS))
                progress(f"append round: {append_rates[-1]:.0f} events/s")

            started = time.perf_counter()
            await load_fixture(url)
            progress(f"fixture: {EVENTS} events loaded in {time.perf_counter() - started:.1f}s")
            store = PostgresEventStore(engine)

            trials: dict[int, float] = {}
            for batch_size in TRIAL_BATCH_SIZES:
                await append_round()
                await reset_projection(engine)
                trial = await catch_up(engine, store, batch_size, TRIAL_EVENTS)
                trials[batch_size] = trial["rate"]
                progress(f"trial batch_size={batch_size}: {trial['rate']:.0f} events/s")
            await append_round()

            batch_size = max(trials, key=lambda size: trials[size])
            await reset_projection(engine)
            full = await catch_up(engine, store, batch_size, None)
            progress(
                f"full catch-up, batch_size={batch_size}: {full['events']:.0f} events in "
                f"{full['seconds']:.1f}s = {full['rate']:.0f} events/s"
            )
            await append_round()
            async with engine.connect() as conn:
                projected = (await conn.execute(text("SELECT count(*) FROM users"))).scalar_one()
                changed = (
                    await conn.execute(
                        text("SELECT count(*) FROM users WHERE version = :v"),
                        {"v": CHANGES_PER_USER + 1},
                    )
                ).scalar_one()
            if full["events"] != EVENTS or projected != USERS or changed != USERS:
                raise RuntimeError(
                    f"catch-up moved {full['events']} events, users {projected}, "
                    f"fully changed {changed}"
                )
        finally:
            await engine.dispose()
            await append_engine.dispose()

    value = full["rate"]
    base = median(append_rates)
    ratio = value / base
    emit(
        {
            "bench": "projection_catchup",
            "value": rounded(value),
            "unit": "events/s",
            "baseline": rounded(base),
            "ratio": rounded(ratio),
            "goal": GOAL_RATIO,
            "goal_met": ratio >= GOAL_RATIO,
            "events": EVENTS,
            "users": USERS,
            "batch_size": batch_size,
            "catchup_seconds": rounded(full["seconds"]),
            "batches": int(full["batches"]),
            "read_all_share": rounded(full["read_share"]),
            "apply_share": rounded(full["apply_share"]),
            "batch_size_trials": {str(k): round(v, 1) for k, v in trials.items()},
            "trial_events": TRIAL_EVENTS,
            "append_rounds": len(append_rates),
            "append_samples": [round(r, 1) for r in append_rates],
            "baseline_kind": "append_concurrent rate: 8 writers, single-event appends",
            **facts,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
