"""100-event appends to one stream by a single writer, events per second.

Side by side in every round (order alternated per round):
- the project: `PostgresEventStore.append` of one `StreamAppend` with 100 `NewEvent`s, at the
  stream's exact expected version (alone, so each append is a group of one);
- baseline: COPY of the same 100 rows into a scratch table with the row shape of `events`,
  on a raw psycopg async connection (autocommit: the COPY is its own transaction).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from _support import (
    SAMPLE_DATA,
    SAMPLE_METADATA,
    SAMPLE_TYPE,
    SCRATCH_COLUMNS,
    SCRATCH_TABLE,
    bench_database,
    create_scratch_table,
    emit,
    median,
    progress,
    rounded,
    server_facts,
)
from psycopg.types.json import Jsonb

from adapters.database import create_engine, libpq_url
from adapters.event_store import PostgresEventStore
from domain.event_store import NewEvent, StreamAppend

BATCH = 100
ROUNDS = 8
SECONDS = 2.0
GOAL_RATIO = 0.8
COPY_SQL = f"COPY {SCRATCH_TABLE} ({SCRATCH_COLUMNS}) FROM STDIN"


async def store_round(store: PostgresEventStore, seconds: float) -> float:
    """Events per second appended in 100-event appends to a fresh stream."""
    loop = asyncio.get_running_loop()
    stream_id = f"batch-{uuid.uuid4().hex[:12]}"
    version = 0
    start = loop.time()
    while loop.time() < start + seconds:
        events = [
            NewEvent(uuid.uuid4(), SAMPLE_TYPE, SAMPLE_DATA, SAMPLE_METADATA) for _ in range(BATCH)
        ]
        result = await store.append(StreamAppend(stream_id, events, version))
        version = result.versions[stream_id]
    return version / (loop.time() - start)


async def copy_round(conn: psycopg.AsyncConnection[object], seconds: float) -> float:
    """Rows per second copied in 100-row COPYs for a fresh stream."""
    loop = asyncio.get_running_loop()
    stream_id = f"batch-{uuid.uuid4().hex[:12]}"
    version = 0
    start = loop.time()
    while loop.time() < start + seconds:
        async with conn.cursor().copy(COPY_SQL) as copy:
            for _ in range(BATCH):
                version += 1
                await copy.write_row(
                    (
                        uuid.uuid4(),
                        stream_id,
                        version,
                        SAMPLE_TYPE,
                        1,
                        Jsonb(SAMPLE_DATA),
                        Jsonb(SAMPLE_METADATA),
                    )
                )
    return version / (loop.time() - start)


async def main() -> None:
    async with bench_database() as url:
        engine = create_engine(url, pool_size=2)
        conn = await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True)
        store = PostgresEventStore(engine)
        try:
            facts = await server_facts(engine)
            await create_scratch_table(engine)
            await store_round(store, 0.3)
            await copy_round(conn, 0.3)
            project: list[float] = []
            baseline: list[float] = []
            for index in range(ROUNDS):
                if index % 2 == 0:
                    project.append(await store_round(store, SECONDS))
                    baseline.append(await copy_round(conn, SECONDS))
                else:
                    baseline.append(await copy_round(conn, SECONDS))
                    project.append(await store_round(store, SECONDS))
                progress(
                    f"round {index + 1}/{ROUNDS}: project {project[-1]:.0f}/s, "
                    f"COPY {baseline[-1]:.0f}/s"
                )
        finally:
            await conn.close()
            await store.close()
            await engine.dispose()

    value = median(project)
    base = median(baseline)
    ratio = value / base
    paired = median([p / b for p, b in zip(project, baseline, strict=True)])
    emit(
        {
            "bench": "append_batch",
            "value": rounded(value),
            "unit": "events/s",
            "baseline": rounded(base),
            "ratio": rounded(ratio),
            "goal": GOAL_RATIO,
            "goal_met": ratio >= GOAL_RATIO,
            "paired_ratio_median": rounded(paired),
            "batch": BATCH,
            "rounds": ROUNDS,
            "seconds_per_round": SECONDS,
            "samples": {
                "project": [round(r, 1) for r in project],
                "baseline": [round(r, 1) for r in baseline],
            },
            "baseline_kind": "COPY of 100 rows, raw psycopg async connection, autocommit",
            **facts,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
