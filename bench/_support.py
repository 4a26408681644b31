"""Shared setup for the benchmark scripts; running it as a script does nothing.

Each benchmark gets a fresh, migrated database: on the machine's Postgres at 127.0.0.1:5432
(user postgres, trust) when reachable, else on an embedded Postgres in a temporary directory.
The database (or the embedded server) is removed when the benchmark ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import statistics
import subprocess
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

import psycopg  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from adapters.database import libpq_url  # noqa: E402
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
RAW_INSERT = (
    f"INSERT INTO {SCRATCH_TABLE} ({SCRATCH_COLUMNS})"
    " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)"
)

# The payload every write benchmark appends: a real event type through the real encoder.
SAMPLE_EVENT = UserEmailChanged("user-bench", "old@example.com", "new@example.com")
SAMPLE_TYPE = type_name(SAMPLE_EVENT)
SAMPLE_DATA: JsonDict = to_data(SAMPLE_EVENT)
SAMPLE_METADATA: JsonDict = {"command_id": "bench", "actor": "bench"}
# The same INSERT for pgbench: `version` is per client (`-D version=0`), the event id drawn
# by the server.
PGBENCH_SCRIPT = f"""\\set version :version + 1
INSERT INTO {SCRATCH_TABLE} ({SCRATCH_COLUMNS}) VALUES (gen_random_uuid(),
 'pgbench-PREFIX-' || :client_id, :version, '{SAMPLE_TYPE}', 1,
 '{json.dumps(SAMPLE_DATA)}'::jsonb, '{json.dumps(SAMPLE_METADATA)}'::jsonb);
"""


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


def scratch_row(stream_id: str, version: int) -> tuple[object, ...]:
    """One row of the scratch table, shaped as the store's single-event append writes it."""
    return (
        uuid.uuid4(),
        stream_id,
        version,
        SAMPLE_TYPE,
        1,
        json.dumps(SAMPLE_DATA),
        json.dumps(SAMPLE_METADATA),
    )


async def raw_insert_round(
    connections: Sequence[psycopg.AsyncConnection[Any]], seconds: float
) -> float:
    """Single-row INSERTs per second on raw psycopg connections, one writer per connection.

    Autocommit (each INSERT is its own transaction, one round trip) and a prepared
    statement: the least a client can do per event.
    """
    prefix = uuid.uuid4().hex[:8]

    async def writer(index: int, deadline: float) -> int:
        loop = asyncio.get_running_loop()
        conn = connections[index]
        stream_id = f"raw-{prefix}-{index}"
        version = 0
        while loop.time() < deadline:
            version += 1
            await conn.execute(RAW_INSERT, scratch_row(stream_id, version), prepare=True)
        return version

    return await run_writers(writer, len(connections), seconds)


async def open_raw_connections(url: str, count: int) -> list[psycopg.AsyncConnection[Any]]:
    return [
        await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True) for _ in range(count)
    ]


def pgbench_round(url: str, seconds: float, clients: int = WRITERS) -> float:
    """Transactions per second of `pgbench` running the same INSERT, `clients` clients.

    Prepared protocol, no vacuum, one INSERT per transaction; each client keeps its own
    stream and counts its versions up, as the writers above do.
    """
    if shutil.which("pgbench") is None:
        raise SystemExit("pgbench is missing: `make bench` installs it")
    prefix = uuid.uuid4().hex[:8]
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
        script.write(PGBENCH_SCRIPT.replace("PREFIX", prefix))
        script.flush()
        done = subprocess.run(
            [
                "pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2",
                "-T", str(max(1, round(seconds))), "-D", "version=0", "-f", script.name,
                libpq_url(url),
            ],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    found = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout)
    if found is None:
        raise RuntimeError(f"no tps in pgbench output: {done.stdout}{done.stderr}")
    return float(found.group(1))


if __name__ == "__main__":
    # `make bench` runs every bench/*.py; this helper module has nothing to measure.
    sys.exit(0)
