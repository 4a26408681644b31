"""What must hold once the faults are over and the workload has ended, each checked on its own.

Every check reads the record itself (the events table, the read models, the topic, Temporal)
and answers a `Check`: its name, whether it held, and the figures behind it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from temporalio.client import Client

from adapters.database import create_engine
from adapters.event_store import PostgresEventStore
from projections.catalog import all_projections
from projections.projector import Projector, checkpoint_name
from tests.chaos.clients import Api
from tests.chaos.workload import BALANCE, TransferAttempt

QUIET_WITHIN = 300.0
"""Bound of the wait for the relay and every projection to reach the head."""
TOPIC_READ_WITHIN = 180.0
TOPIC = "sagaline.events"
BALANCE_EFFECT = {"MoneyDeposited": 1, "TransferRefunded": 1, "MoneyWithdrawn": -1}


@dataclass(frozen=True)
class Check:
    """One invariant: whether it held, and what was measured."""

    name: str
    held: bool
    detail: str


async def _rows(database_url: str, query: str, *params: object) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        return list(await (await conn.execute(query, params)).fetchall())


async def _value(database_url: str, query: str, *params: object) -> object:
    return (await _rows(database_url, query, *params))[0][0]


async def lag_zero(database_url: str) -> Check:
    """The relay and every projection reach the head of the store (bounded wait)."""
    names = ["relay", *(checkpoint_name(p.name) for p in all_projections())]
    started = time.monotonic()
    behind: dict[str, int] = {}
    while time.monotonic() - started < QUIET_WITHIN:
        head = int(str(await _value(database_url, "SELECT coalesce(max(position), 0) FROM events")))
        rows = await _rows(
            database_url, "SELECT name, position FROM checkpoints WHERE name = ANY(%s)", names
        )
        positions = {str(name): int(str(position)) for name, position in rows}
        behind = {name: head - positions.get(name, 0) for name in names}
        if all(lag == 0 for lag in behind.values()):
            waited = time.monotonic() - started
            return Check("lag 0", True, f"relay and projections at head {head} ({waited:.1f}s)")
        await asyncio.sleep(0.5)
    return Check("lag 0", False, f"still behind after {QUIET_WITHIN:.0f}s: {behind}")


async def money(api: Api, database_url: str, accounts: list[str], expected: Decimal) -> Check:
    """The sum of balances, from the API and from the events, is what the bank started with."""
    from_api = Decimal(0)
    for account_id in accounts:
        data = await api.read(BALANCE, {"id": account_id})
        from_api += Decimal(data["account"]["balance"])
    rows = await _rows(
        database_url,
        "SELECT type, (data->>'amount')::numeric FROM events WHERE stream_id = ANY(%s)"
        " AND type = ANY(%s)",
        accounts,
        list(BALANCE_EFFECT),
    )
    from_events = sum(
        (BALANCE_EFFECT[str(kind)] * Decimal(str(amount)) for kind, amount in rows), Decimal(0)
    )
    held = from_api == expected and from_events == expected
    return Check("money", held, f"API {from_api}, events {from_events}, expected {expected}")


async def transfers_terminal(
    database_url: str, temporal_address: str, attempts: list[TransferAttempt]
) -> Check:
    """Every transfer ended, as its client saw it: the record and the client agree."""
    rows = await _rows(database_url, "SELECT id, status FROM transfers")
    recorded = {str(transfer_id): str(status) for transfer_id, status in rows}
    streams = {
        str(stream_id)
        for (stream_id,) in await _rows(
            database_url,
            "SELECT DISTINCT stream_id FROM events WHERE stream_id = ANY(%s)",
            [a.transfer_id for a in attempts],
        )
    }
    open_transfers = sorted(t for t, status in recorded.items() if status == "REQUESTED")
    disagreements = []
    for attempt in attempts:
        truth = recorded.get(attempt.transfer_id)
        if truth is None:
            truth = "RECORDED WITHOUT READ MODEL" if attempt.transfer_id in streams else "REFUSED"
        if attempt.outcome != truth:
            disagreements.append(f"{attempt.transfer_id}: client {attempt.outcome}, record {truth}")
    client = await Client.connect(temporal_address)
    running = 0
    async for _ in client.list_workflows(
        "WorkflowType = 'TransferSaga' AND ExecutionStatus = 'Running'"
    ):
        running += 1
    outcomes = Counter(str(a.outcome).split(" (")[0] for a in attempts)
    held = not disagreements and not open_transfers and running == 0
    detail = (
        f"{len(attempts)} transfers: {dict(sorted(outcomes.items()))}; "
        f"{len(disagreements)} disagree, {len(open_transfers)} not terminal, "
        f"{running} sagas still running"
    )
    if disagreements:
        detail += "; e.g. " + "; ".join(disagreements[:5])
    return Check("transfers terminal, clients agree", held, detail)


async def streams_sound(database_url: str) -> Check:
    """Versions 1..n in every stream, no event id twice, no transfer's money moved twice."""
    gaps = await _value(
        database_url,
        "SELECT count(*) FROM (SELECT stream_id FROM events GROUP BY stream_id"
        " HAVING min(version) <> 1 OR max(version) <> count(*)"
        " OR count(DISTINCT version) <> count(*)) gapped",
    )
    behind_streams = await _value(
        database_url,
        "SELECT count(*) FROM streams s WHERE s.version <>"
        " (SELECT max(version) FROM events e WHERE e.stream_id = s.stream_id)",
    )
    duplicate_ids = await _value(
        database_url, "SELECT count(*) - count(DISTINCT event_id) FROM events"
    )
    twice = await _rows(
        database_url,
        "SELECT type, count(*) FROM (SELECT type, data->>'transfer_id' FROM events"
        " WHERE type = ANY(%s) AND data->>'transfer_id' IS NOT NULL"
        " GROUP BY 1, 2 HAVING count(*) > 1) repeated GROUP BY type",
        ["MoneyWithdrawn", "MoneyDeposited", "TransferRefunded"],
    )
    effects = await _rows(
        database_url,
        "SELECT type, count(*) FROM events WHERE type = ANY(%s)"
        " AND data->>'transfer_id' IS NOT NULL GROUP BY type",
        ["MoneyWithdrawn", "MoneyDeposited", "TransferRefunded"],
    )
    streams = await _value(database_url, "SELECT count(DISTINCT stream_id) FROM events")
    total = await _value(database_url, "SELECT count(*) FROM events")
    repeated = {str(kind): int(str(count)) for kind, count in twice}
    held = gaps == 0 and behind_streams == 0 and duplicate_ids == 0 and not repeated
    detail = (
        f"{total} events in {streams} streams; {gaps} streams with gaps, {behind_streams} with a "
        f"stale version, {duplicate_ids} duplicate event ids; transfer effects "
        f"{dict((str(k), int(str(c))) for k, c in effects)}, repeated {repeated or 'none'}"
    )
    return Check("streams contiguous, no duplicates", held, detail)


async def read_models_equal_rebuild(database_url: str) -> Check:
    """Each read model equals the same projection replayed from position 0 into fresh tables."""
    engine = create_engine(database_url, pool_size=2)
    store = PostgresEventStore(engine)
    differences: dict[str, int] = {}
    try:
        for projection in all_projections():
            shadows = {table: f"chaos_rebuild_{table}" for table in projection.tables}
            checkpoint = f"chaos-rebuild:{projection.name}"
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
                for live, shadow in shadows.items():
                    await c.execute(f'DROP TABLE IF EXISTS "{shadow}"')
                    await c.execute(f'CREATE TABLE "{shadow}" (LIKE "{live}" INCLUDING ALL)')
                await c.execute("DELETE FROM checkpoints WHERE name = %s", (checkpoint,))
            replay = Projector(engine, store, projection.writing_to(shadows), checkpoint=checkpoint)
            while await replay.run_batch(wait_seconds=0.1) > 0:
                pass
            for live, shadow in shadows.items():
                differing = 0
                for a, b in ((live, shadow), (shadow, live)):
                    differing += int(
                        str(
                            await _value(
                                database_url,
                                f'SELECT count(*) FROM (TABLE "{a}" EXCEPT ALL TABLE "{b}") d',
                            )
                        )
                    )
                differences[live] = differing
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
                for shadow in shadows.values():
                    await c.execute(f'DROP TABLE "{shadow}"')
                await c.execute("DELETE FROM checkpoints WHERE name = %s", (checkpoint,))
    finally:
        await store.close()
        await engine.dispose()
    held = all(count == 0 for count in differences.values())
    return Check("read models equal a rebuild", held, f"rows differing per table: {differences}")


async def kafka_complete_and_ordered(database_url: str, bootstrap: str) -> Check:
    """Every stored event is on the topic; per key, first copies come in version order."""
    rows = await _rows(database_url, "SELECT event_id::text, position FROM events")
    stored = {str(event_id): int(str(position)) for event_id, position in rows}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    seen: Counter[str] = Counter()
    out_of_order: list[str] = []
    copies = 0
    try:
        partitions = [TopicPartition(TOPIC, p) for p in consumer.partitions_for_topic(TOPIC) or []]
        if not partitions:
            await consumer.stop()
            return Check("kafka complete, ordered per key", False, f"topic {TOPIC} not found")
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        last_first: dict[str, int] = defaultdict(int)
        async with asyncio.timeout(TOPIC_READ_WITHIN):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                for records in batch.values():
                    for record in records:
                        copies += 1
                        headers = {k: v.decode() for k, v in record.headers}
                        event_id = headers["ce_id"]
                        seen[event_id] += 1
                        if seen[event_id] > 1:
                            continue
                        key = (record.key or b"").decode()
                        version = int(headers["sagaline_stream_version"])
                        if version <= last_first[key]:
                            out_of_order.append(f"{key} v{version} after v{last_first[key]}")
                        last_first[key] = max(last_first[key], version)
    finally:
        await consumer.stop()
    missing = sorted(stored[e] for e in stored.keys() - seen.keys())
    duplicates = copies - len(seen)
    held = not missing and not out_of_order
    detail = (
        f"{len(stored)} stored, {len(seen)} distinct on the topic in {copies} copies "
        f"({duplicates} duplicates); {len(missing)} missing"
        f"{' (positions ' + str(missing[:10]) + ')' if missing else ''}, "
        f"{len(out_of_order)} first copies out of order"
        f"{' (' + '; '.join(out_of_order[:5]) + ')' if out_of_order else ''}"
    )
    return Check("kafka complete, ordered per key", held, detail)
