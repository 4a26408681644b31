"""Single-event appends by 8 concurrent writers, each owning a stream at an exact version.

Side by side in every round (order rotated per round):
- the project: `PostgresEventStore.append` (events/s);
- baseline: a plain single-row INSERT of the same row shape into a scratch table, via the
  same engine, one statement per transaction;
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
    plain_insert_round,
    progress,
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
SECONDS = 1.5
GOAL_RATIO = 0.6
GOAL_VS_EVENTSOURCING = 1.5
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
        try:
            facts = await server_facts(engine)
            await create_scratch_table(engine)
            store = PostgresEventStore(engine)

            async def project() -> float:
                return await store_append_round(store, SECONDS)

            async def baseline() -> float:
                return await plain_insert_round(engine, SECONDS)

            async def library() -> float:
                return await asyncio.to_thread(eventsourcing_round, recorder, SECONDS)

            # Warm up pools and prepared statements.
            await store_append_round(store, 0.3)
            await plain_insert_round(engine, 0.3)
            await asyncio.to_thread(eventsourcing_round, recorder, 0.3)

            sides = {"project": project, "baseline": baseline, "eventsourcing": library}
            rates: dict[str, list[float]] = {name: [] for name in sides}
            names = list(sides)
            for round_index in range(ROUNDS):
                order = names[round_index % 3 :] + names[: round_index % 3]
                for name in order:
                    rates[name].append(await sides[name]())
                progress(
                    f"round {round_index + 1}/{ROUNDS}: "
                    + ", ".join(f"{n} {rates[n][-1]:.0f}/s" for n in names)
                )
        finally:
            recorder.datastore.close()
            await engine.dispose()

    value = median(rates["project"])
    base = median(rates["baseline"])
    library_rate = median(rates["eventsourcing"])
    ratio = value / base
    vs_library = value / library_rate
    # Same-round ratios: each pair ran seconds apart, so they share most of the noise.
    paired = median([p / b for p, b in zip(rates["project"], rates["baseline"], strict=True)])
    paired_library = median(
        [p / e for p, e in zip(rates["project"], rates["eventsourcing"], strict=True)]
    )
    emit(
        {
            "bench": "append_concurrent",
            "value": rounded(value),
            "unit": "events/s",
            "baseline": rounded(base),
            "ratio": rounded(ratio),
            "goal": GOAL_RATIO,
            "goal_met": ratio >= GOAL_RATIO,
            "eventsourcing_rate": rounded(library_rate),
            "vs_eventsourcing": rounded(vs_library),
            "vs_eventsourcing_goal": GOAL_VS_EVENTSOURCING,
            "vs_eventsourcing_goal_met": vs_library >= GOAL_VS_EVENTSOURCING,
            "paired_ratio_median": rounded(paired),
            "paired_vs_eventsourcing_median": rounded(paired_library),
            "writers": WRITERS,
            "rounds": ROUNDS,
            "seconds_per_round": SECONDS,
            "samples": {name: [round(r, 1) for r in values] for name, values in rates.items()},
            "baseline_kind": "single-row INSERT, autocommit, same engine",
            **facts,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
