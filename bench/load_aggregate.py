"""Loading a User with 1,000 events through the Repository, with and without a snapshot.

Fixture: register + 999 email changes, appended in batches of 100 straight through the store
(real event types, `domain.events.to_data`), then a Snapshot of the loaded aggregate at
version 1000 saved in `PostgresSnapshotStore`.

Side by side in every round (order alternated per round), one load at a time:
- the project: `Repository(store, PostgresSnapshotStore, {"User": 100}).load` (snapshot, then
  the events after it: none);
- baseline: `Repository(store).load` (no snapshots: all 1,000 events replayed).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import bench_database, emit, median, progress, rounded, server_facts

from adapters.database import create_engine
from adapters.event_store import PostgresEventStore
from adapters.snapshots import PostgresSnapshotStore
from domain.event_store import NO_STREAM, NewEvent, Snapshot, StreamAppend
from domain.events import DomainEvent, to_data, type_name
from domain.repository import Repository
from domain.users import User, UserEmailChanged, UserRegistered

EVENTS = 1000
APPEND_BATCH = 100
ROUNDS = 8
SECONDS = 1.5
SNAPSHOT_EVERY = 100


def user_history(user_id: str) -> list[DomainEvent]:
    """A registration followed by 999 email changes."""
    history: list[DomainEvent] = [UserRegistered(user_id, "u0@example.com", "Bench User")]
    for n in range(1, EVENTS):
        history.append(UserEmailChanged(user_id, f"u{n - 1}@example.com", f"u{n}@example.com"))
    return history


async def append_history(store: PostgresEventStore, user_id: str) -> None:
    history = user_history(user_id)
    version = NO_STREAM
    for start in range(0, len(history), APPEND_BATCH):
        events = [
            NewEvent(uuid.uuid4(), type_name(e), to_data(e), {"actor": "bench"})
            for e in history[start : start + APPEND_BATCH]
        ]
        result = await store.append(StreamAppend(user_id, events, version))
        version = result.versions[user_id]


async def loads_per_second(repository: Repository, user_id: str, seconds: float) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    loads = 0
    while loop.time() < start + seconds:
        user = await repository.load(User, user_id)
        if user.version != EVENTS:
            raise RuntimeError(f"loaded version {user.version}, expected {EVENTS}")
        loads += 1
    return loads / (loop.time() - start)


async def main() -> None:
    async with bench_database() as url:
        engine = create_engine(url, pool_size=2)
        try:
            facts = await server_facts(engine)
            store = PostgresEventStore(engine)
            snapshots = PostgresSnapshotStore(engine)
            user_id = f"user-{uuid.uuid4().hex[:12]}"
            await append_history(store, user_id)

            plain = Repository(store)
            with_snapshots = Repository(store, snapshots, {"User": SNAPSHOT_EVERY})
            replayed = await plain.load(User, user_id)
            await snapshots.save(
                Snapshot(
                    user_id,
                    replayed.version,
                    User.__name__,
                    User.snapshot_schema,
                    replayed.snapshot_state(),
                )
            )
            from_snapshot = await with_snapshots.load(User, user_id)
            if (from_snapshot.version, from_snapshot.email) != (replayed.version, replayed.email):
                raise RuntimeError("the snapshot load differs from the full replay")
            progress(f"fixture: {replayed.version} events, snapshot at {replayed.version}")

            await loads_per_second(plain, user_id, 0.3)
            await loads_per_second(with_snapshots, user_id, 0.3)
            project: list[float] = []
            baseline: list[float] = []
            for index in range(ROUNDS):
                if index % 2 == 0:
                    project.append(await loads_per_second(with_snapshots, user_id, SECONDS))
                    baseline.append(await loads_per_second(plain, user_id, SECONDS))
                else:
                    baseline.append(await loads_per_second(plain, user_id, SECONDS))
                    project.append(await loads_per_second(with_snapshots, user_id, SECONDS))
                progress(
                    f"round {index + 1}/{ROUNDS}: snapshot {project[-1]:.0f}/s, "
                    f"replay {baseline[-1]:.1f}/s"
                )
        finally:
            await engine.dispose()

    value = median(project)
    base = median(baseline)
    emit(
        {
            "bench": "load_aggregate",
            "value": rounded(value),
            "unit": "loads/s",
            "baseline": rounded(base),
            "ratio": rounded(value / base),
            "goal": None,
            "goal_met": None,
            "events": EVENTS,
            "snapshot_every": SNAPSHOT_EVERY,
            "load_ms_with_snapshot": rounded(1000 / value),
            "load_ms_without_snapshot": rounded(1000 / base),
            "rounds": ROUNDS,
            "seconds_per_round": SECONDS,
            "samples": {
                "project": [round(r, 1) for r in project],
                "baseline": [round(r, 1) for r in baseline],
            },
            "baseline_kind": "Repository without snapshots (replay of 1,000 events)",
            **facts,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
