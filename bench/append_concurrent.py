"""Single-event appends by 8 concurrent writers, each owning a stream at an exact version.

Side by side in every round (order rotated per round):
- the project: `PostgresEventStore.append` (events/s), group commit included;
- baseline: raw psycopg 3, 8 async connections, each a writer running a prepared single-row
  INSERT of the same row shape into a scratch table, autocommit (one statement per commit);
- `pgbench` with the same INSERT, 8 clients, prepared protocol (tps);
- the `eventsourcing` library's `PostgresApplicationRecorder` on the same database (8 threads,
  since it is synchronous), one `StoredEvent` per insert with increasing originator_version.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import (
    SAMPLE_DATA,
    WRITERS,
    bench_database,
    create_scratch_table,
    emit,
    median,
    open_raw_connections,
    pgbench_round,
    progress,
    raw_insert_round,
    rounded,
    server_facts,
    store_append_round,
)
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from sqlalchemy.engine import make_url

from adapters.database import create_engine
from adapters.event_store import PostgresEventStore

ROUNDS = 8
SECONDS = 2.0
GOAL_RATIO = 1.0
GOAL_VS_PGBENCH = 0.8
GOAL_VS_EVENTSOURCING = 5.0
ES_TOPIC = "domain.users:UserEmailChanged"
ES_STATE = json.dumps(SAMPLE_DATA).encode()


def eventsourcing_recorder(url: str, pool_size: int) -> PostgresApplicationRecorder:
    """The library's application recorder on the benchmark database, tables created."""
    parsed = make_url(url)
    datastore = PostgresDatastore(
        dbname=parsed.database or "",
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password or "",
        pool_size=pool_size,
    )
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()
    return recorder


def eventsourcing_round(
    recorder: PostgresApplicationRecorder, seconds: float, writers: int = WRITERS
) -> float:
    """Single-event inserts per second by `writers` threads, one aggregate each."""

    def writer(deadline: float) -> int:
        originator = uuid.uuid4()
        version = 0
        while time.perf_counter() < deadline:
            event = StoredEvent(originator, version + 1, ES_TOPIC, ES_STATE)
            recorder.insert_events([event])
            version += 1
        return version

    with ThreadPoolExecutor(max_workers=writers) as pool:
        start = time.perf_counter()
        futures = [pool.submit(writer, start + seconds) for _ in range(writers)]
        total = sum(f.result() for f in futures)
        return total / (time.perf_counter() - start)


async def main() -> None:
    async with bench_database() as url:
        engine = create_engine(url, pool_size=WRITERS)
        recorder = eventsourcing_recorder(url, pool_size=WRITERS)
        store = PostgresEventStore(engine)
        raw = await open_raw_connections(url, WRITERS)
        try:
            facts = await server_facts(engine)
            await create_scratch_table(engine)

            async def project() -> float:
                return await store_append_round(store, SECONDS)

            async def baseline() -> float:
                return await raw_insert_round(raw, SECONDS)

            async def pgbench() -> float:
                return await asyncio.to_thread(pgbench_round, url, SECONDS)

            async def library() -> float:
                return await asyncio.to_thread(eventsourcing_round, recorder, SECONDS)

            # Warm up pools and prepared statements.
            await store_append_round(store, 0.3)
            await raw_insert_round(raw, 0.3)
            await asyncio.to_thread(eventsourcing_round, recorder, 0.3)

            sides = {
                "project": project,
                "psycopg": baseline,
                "pgbench": pgbench,
                "eventsourcing": library,
            }
            rates: dict[str, list[float]] = {name: [] for name in sides}
            names = list(sides)
            for round_index in range(ROUNDS):
                shift = round_index % len(names)
                for name in names[shift:] + names[:shift]:
                    rates[name].append(await sides[name]())
                progress(
                    f"round {round_index + 1}/{ROUNDS}: "
                    + ", ".join(f"{n} {rates[n][-1]:.0f}/s" for n in names)
                )
        finally:
            for conn in raw:
                await conn.close()
            await store.close()
            recorder.datastore.close()
            await engine.dispose()

    value = median(rates["project"])
    medians = {name: median(values) for name, values in rates.items()}

    def paired(other: str) -> float:
        # Same-round ratios: each pair ran seconds apart, so they share most of the noise.
        return median([p / o for p, o in zip(rates["project"], rates[other], strict=True)])

    ratio = value / medians["psycopg"]
    vs_pgbench = value / medians["pgbench"]
    vs_library = value / medians["eventsourcing"]
    emit(
        {
            "bench": "append_concurrent",
            "value": rounded(value),
            "unit": "events/s",
            "baseline": rounded(medians["psycopg"]),
            "ratio": rounded(ratio),
            "goal": GOAL_RATIO,
            "goal_met": ratio >= GOAL_RATIO,
            "paired_ratio_median": rounded(paired("psycopg")),
            "pgbench_tps": rounded(medians["pgbench"]),
            "vs_pgbench": rounded(vs_pgbench),
            "vs_pgbench_goal": GOAL_VS_PGBENCH,
            "vs_pgbench_goal_met": vs_pgbench >= GOAL_VS_PGBENCH,
            "paired_vs_pgbench_median": rounded(paired("pgbench")),
            "eventsourcing_rate": rounded(medians["eventsourcing"]),
            "vs_eventsourcing": rounded(vs_library),
            "vs_eventsourcing_goal": GOAL_VS_EVENTSOURCING,
            "vs_eventsourcing_goal_met": vs_library >= GOAL_VS_EVENTSOURCING,
            "paired_vs_eventsourcing_median": rounded(paired("eventsourcing")),
            "groups_flushed": store.appends.groups_flushed,
            "appends_flushed": store.appends.appends_flushed,
            "writers": WRITERS,
            "rounds": ROUNDS,
            "seconds_per_round": SECONDS,
            "samples": {name: [round(r, 1) for r in values] for name, values in rates.items()},
            "baseline_kind": "raw psycopg 3 async, 8 connections, prepared INSERT, autocommit",
            "pgbench_kind": "pgbench -M prepared -c 8, the same INSERT, one per transaction",
            **facts,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
