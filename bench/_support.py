"""Shared setup for the benchmark scripts; running it as a script does nothing.

Each benchmark gets a fresh, migrated database: on the machine's Postgres at 127.0.0.1:5432
(user postgres, trust) when reachable, else on an embedded Postgres in a temporary directory.
The database (or the embedded server) is removed when the benchmark ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from adapters.event_store import PostgresEventStore  # noqa: E402
from domain.event_store import NewEvent, StreamAppend  # noqa: E402
from domain.events import JsonDict, to_data, type_name  # noqa: E402
from domain.users import UserEmailChanged  # noqa: E402

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
WRITERS = 8

# A scratch table with the row shape of `events`, for the plain-SQL baselines.
SCRATCH_TABLE = "bench_events"
CREATE_SCRATCH = f"""
CREATE TABLE {SCRATCH_TABLE} (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    stream_id text NOT NULL,
    version integer NOT NULL,
    type text NOT NULL,
    schema_version smallint NOT NULL,
    data jsonb NOT NULL,
    metadata jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
)
"""
SCRATCH_COLUMNS = "event_id, stream_id, version, type, schema_version, data, metadata"
INSERT_SCRATCH = text(
    f"INSERT INTO {SCRATCH_TABLE} ({SCRATCH_COLUMNS}) VALUES (:event_id, :stream_id, :version,"
    " :type, :schema_version, CAST(:data AS jsonb), CAST(:metadata AS jsonb))"
)

# The payload every write benchmark appends: a real event type through the real encoder.
SAMPLE_EVENT = UserEmailChanged("user-bench", "old@example.com", "new@example.com")
SAMPLE_TYPE = type_name(SAMPLE_EVENT)
SAMPLE_DATA: JsonDict = to_data(SAMPLE_EVENT)
SAMPLE_METADATA: JsonDict = {"command_id": "bench", "actor": "bench"}


def progress(message: str) -> None:
    """A short progress line on stderr (stdout is kept for the result)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    """Print the result as the last line of stdout."""
    print(json.dumps(result), flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty sample."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def rounded(value: float) -> float:
    """One decimal for large figures, three for ratios and small ones."""
    return round(value, 1) if abs(value) >= 100 else round(value, 3)


@contextlib.asynccontextmanager
async def bench_database() -> AsyncIterator[str]:
    """The URL of a fresh migrated database, dropped (or its server stopped) afterwards."""
    from runtime.embedded.postgres import (
        EmbeddedPostgres,
        create_database,
        drop_database,
        server_reachable,
    )
    from runtime.migrate import migrate
    from runtime.ports import free_port

    if await server_reachable(LOCAL_POSTGRES):
        name = f"sagaline_bench_{uuid.uuid4().hex[:12]}"
        progress(f"using local Postgres, database {name}")
        await create_database(LOCAL_POSTGRES, name)
        try:
            url = LOCAL_POSTGRES.rsplit("/", 1)[0] + f"/{name}"
            await asyncio.to_thread(migrate, url)
            yield url
        finally:
            await drop_database(LOCAL_POSTGRES, name)
        return

    # Under /tmp: when root, the server runs as an unprivileged account that must reach it.
    directory = Path(tempfile.mkdtemp(prefix="sagaline-bench-"))
    progress(f"no local Postgres; starting an embedded one in {directory}")
    postgres = EmbeddedPostgres(directory / "postgres", free_port())
    try:
        await postgres.start()
        await asyncio.to_thread(migrate, postgres.url)
        yield postgres.url
    finally:
        await postgres.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def server_facts(engine: AsyncEngine) -> dict[str, str]:
    """Server version and the settings that matter most for write throughput."""
    async with engine.connect() as conn:
        version = (await conn.execute(text("SHOW server_version"))).scalar_one()
        sync = (await conn.execute(text("SHOW synchronous_commit"))).scalar_one()
    return {"postgres": str(version), "synchronous_commit": str(sync)}


async def create_scratch_table(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(CREATE_SCRATCH))


async def run_writers(
    writer: Callable[[int, float], Awaitable[int]], writers: int, seconds: float
) -> float:
    """Operations per second of `writers` concurrent tasks, each running until the deadline."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    counts = await asyncio.gather(*(writer(i, start + seconds) for i in range(writers)))
    return sum(counts) / (loop.time() - start)


async def store_append_round(
    store: PostgresEventStore, seconds: float, writers: int = WRITERS
) -> float:
    """Single-event appends per second with exact expected versions, one stream per writer."""
    prefix = uuid.uuid4().hex[:8]

    async def writer(index: int, deadline: float) -> int:
        loop = asyncio.get_running_loop()
        stream_id = f"bench-{prefix}-{index}"
        version = 0
        while loop.time() < deadline:
            event = NewEvent(uuid.uuid4(), SAMPLE_TYPE, SAMPLE_DATA, SAMPLE_METADATA)
            result = await store.append(StreamAppend(stream_id, [event], version))
            version = result.versions[stream_id]
        return version

    return await run_writers(writer, writers, seconds)


async def plain_insert_round(engine: AsyncEngine, seconds: float, writers: int = WRITERS) -> float:
    """Single-row INSERTs per second into the scratch table, one statement per transaction.

    Like the store's single-stream append, the statement runs in autocommit mode (it is its
    own transaction: one round trip), through the same engine and pool.
    """
    prefix = uuid.uuid4().hex[:8]

    async def writer(index: int, deadline: float) -> int:
        loop = asyncio.get_running_loop()
        stream_id = f"bench-{prefix}-{index}"
        version = 0
        while loop.time() < deadline:
            params = {
                "event_id": uuid.uuid4(),
                "stream_id": stream_id,
                "version": version + 1,
                "type": SAMPLE_TYPE,
                "schema_version": 1,
                "data": json.dumps(SAMPLE_DATA),
                "metadata": json.dumps(SAMPLE_METADATA),
            }
            async with engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await auto.execute(INSERT_SCRATCH, params)
            version += 1
        return version

    return await run_writers(writer, writers, seconds)


if __name__ == "__main__":
    # `make bench` runs every bench/*.py; this helper module has nothing to measure.
    sys.exit(0)
