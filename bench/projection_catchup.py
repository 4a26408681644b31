"""Full catch-up of UsersProjection over 200,000 user events, against a hand-written fold.

Fixture (not timed): 50,000 users, each with UserRegistered + 3 UserEmailChanged (all emails
unique), COPied into `events` (positions drawn from the table's identity) with matching
`streams` and `unique_keys` rows. Users come in blocks of 1,000, each block's events version
by version, so any prefix of the global order mixes registrations and changes like the whole.

Measured:
- batch-size trials: the first 20,000 events with a few `batch_size`s (projection reset in
  between); the fastest is used for the full runs;
- the project: `Projector(engine, store, UsersProjection(), batch_size).run_batch()` in a loop
  from position 0 until it returns 0, in events/s (the checkpoint's movement over time), in
  FULL_RUNS runs (projection reset in between);
- baseline: what a user would write by hand for a one-off catch-up, on a raw psycopg
  connection: one query reading every user event in position order, the fold in Python to
  each user's final row, and one COPY of those rows into `bench_users`, a copy of `users`
  with its indexes (emptied before each round, not timed), committed. In rounds before and
  after every trial and full run.
ratio = median(project) / median(baseline); paired: each full run against the mean of the
baseline rounds just before and after it. The goal is 0.5.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from _support import (
    bench_database,
    emit,
    median,
    progress,
    rounded,
    server_facts,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.database import create_engine, libpq_url
from adapters.event_store import PostgresEventStore
from domain.event_store import EventPage, RecordedEvent
from domain.events import to_data
from domain.users import EMAIL_SCOPE, UserEmailChanged, UserRegistered, UserStatus
from projections.projector import Projector, checkpoint_name
from projections.users import UsersProjection

USERS = 50_000
CHANGES_PER_USER = 3
EVENTS = USERS * (1 + CHANGES_PER_USER)
BLOCK = 1_000
TRIAL_EVENTS = 20_000
TRIAL_BATCH_SIZES = (500, 2000, 10000)
FULL_RUNS = 3
GOAL_RATIO = 0.5
REFERENCE_TABLE = "bench_users"
ACTIVE = UserStatus.ACTIVE.value
LOCKED = UserStatus.LOCKED.value
REFERENCE_COLUMNS = "id, email, name, status, registered_at, last_updated, version, locked_version"
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
                        stream_id, email(user, 0), f"User {user}"
                    )
                else:
                    event = UserEmailChanged(
                        stream_id, email(user, change - 1), email(user, change)
                    )
                data = json.dumps(to_data(event))
                kind = type(event).__name__
                rows.append(
                    (
                        uuid.uuid4(),
                        stream_id,
                        change + 1,
                        kind,
                        event.schema_version,
                        data,
                        METADATA,
                    )
                )
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


async def reset_reference(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True) as conn:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {REFERENCE_TABLE} (LIKE users INCLUDING ALL)"
        )
        await conn.execute(f"TRUNCATE {REFERENCE_TABLE}")
        await conn.execute(f"VACUUM ANALYZE {REFERENCE_TABLE}")


async def reference_fold(url: str) -> float:
    """Events/s of the hand-written catch-up: one read, a fold in Python, one COPY."""
    await reset_reference(url)
    types = list(UsersProjection.event_types)
    async with await psycopg.AsyncConnection.connect(libpq_url(url)) as conn:
        start = time.perf_counter()
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT stream_id, version, type, data, recorded_at FROM events"
                " WHERE type = ANY(%s) ORDER BY position",
                (types,),
            )
            records = await cur.fetchall()
            folded: dict[str, list[Any]] = {}
            for stream_id, version, kind, data, recorded_at in records:
                if kind == "UserRegistered":
                    folded[stream_id] = [
                        stream_id, data["email"], data["name"], ACTIVE,
                        recorded_at, recorded_at, version, 0,
                    ]  # fmt: skip
                    continue
                row = folded[stream_id]
                row[5], row[6] = recorded_at, version
                if kind == "UserEmailChanged":
                    row[1] = data["new_email"]
                elif kind == "UserLocked":
                    row[3], row[7] = LOCKED, version
                elif kind == "UserUnlocked":
                    row[3] = ACTIVE
            copy_sql = f"COPY {REFERENCE_TABLE} ({REFERENCE_COLUMNS}) FROM STDIN"
            async with cur.copy(copy_sql) as copy:
                for row in folded.values():
                    await copy.write_row(row)
        await conn.commit()
        elapsed = time.perf_counter() - start
    if len(records) != EVENTS or len(folded) != USERS:
        raise RuntimeError(f"the fold read {len(records)} events into {len(folded)} users")
    return len(records) / elapsed


async def check_projected(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        projected = (await conn.execute(text("SELECT count(*) FROM users"))).scalar_one()
        changed = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM users u JOIN bench_users b USING (id)"
                    " WHERE u.version = :v AND u.email = b.email AND b.version = :v"
                ),
                {"v": CHANGES_PER_USER + 1},
            )
        ).scalar_one()
    if projected != USERS or changed != USERS:
        raise RuntimeError(f"users {projected}, fully changed and equal to the fold {changed}")


async def main() -> None:
    async with bench_database() as url:
        engine = create_engine(url, pool_size=4)
        try:
            facts = await server_facts(engine)
            started = time.perf_counter()
            await load_fixture(url)
            progress(f"fixture: {EVENTS} events loaded in {time.perf_counter() - started:.1f}s")
            store = PostgresEventStore(engine)
            reference_rates: list[float] = []

            async def reference_round() -> None:
                reference_rates.append(await reference_fold(url))
                progress(f"hand-written fold: {reference_rates[-1]:.0f} events/s")

            await reference_fold(url)  # warm-up: the events' pages in the server's cache
            trials: dict[int, float] = {}
            for batch_size in TRIAL_BATCH_SIZES:
                await reference_round()
                await reset_projection(engine)
                trial = await catch_up(engine, store, batch_size, TRIAL_EVENTS)
                trials[batch_size] = trial["rate"]
                progress(f"trial batch_size={batch_size}: {trial['rate']:.0f} events/s")

            batch_size = max(trials, key=lambda size: trials[size])
            runs: list[dict[str, float]] = []
            paired: list[float] = []
            for _ in range(FULL_RUNS):
                await reference_round()
                await reset_projection(engine)
                full = await catch_up(engine, store, batch_size, None)
                if full["events"] != EVENTS:
                    raise RuntimeError(f"catch-up moved {full['events']} events")
                await check_projected(engine)
                runs.append(full)
                progress(
                    f"full catch-up, batch_size={batch_size}: {full['events']:.0f} events in "
                    f"{full['seconds']:.1f}s = {full['rate']:.0f} events/s"
                )
                before = reference_rates[-1]
                await reference_round()
                paired.append(full["rate"] / ((before + reference_rates[-1]) / 2))
        finally:
            await engine.dispose()

    value = median([r["rate"] for r in runs])
    base = median(reference_rates)
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
            "paired_ratio_median": rounded(median(paired)),
            "events": EVENTS,
            "users": USERS,
            "batch_size": batch_size,
            "full_runs": FULL_RUNS,
            "catchup_seconds": [rounded(r["seconds"]) for r in runs],
            "samples": {
                "project": [round(r["rate"], 1) for r in runs],
                "baseline": [round(r, 1) for r in reference_rates],
            },
            "batches": int(runs[0]["batches"]),
            "read_all_share": rounded(median([r["read_share"] for r in runs])),
            "apply_share": rounded(median([r["apply_share"] for r in runs])),
            "batch_size_trials": {str(k): round(v, 1) for k, v in trials.items()},
            "trial_events": TRIAL_EVENTS,
            "baseline_kind": "hand-written fold: one SELECT, fold in Python, COPY of final rows",
            **facts,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
