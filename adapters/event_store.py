"""The PostgreSQL event store: atomic appends and a gap-safe global order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

from opentelemetry.trace import SpanKind
from sqlalchemy import Row, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.database import driver_of, libpq_url
from adapters.group_commit import EventIdTaken, GroupCommit, event_json, keys_json, stream_json
from adapters.schema import events
from adapters.tracing import span
from domain.event_store import (
    AppendResult,
    EncodedEvent,
    EncodedPage,
    EventIdConflict,
    EventPage,
    RecordedEvent,
    StreamAppend,
    UniqueKey,
    UniqueKeyTaken,
    WrongExpectedVersion,
    same_content,
)
from domain.events import JsonDict

REFUSALS = (WrongExpectedVersion, UniqueKeyTaken, EventIdConflict, EventIdTaken)
"""What an append that writes nothing answers, for its caller to handle (a conflict is
retried); its span records them without a traceback."""

NOTIFY_CHANNEL = "sagaline_events"
# Connections `append` keeps: while all are busy, appends queue and go together in the next
# group, so a few carry many concurrent callers.
APPEND_CONNECTIONS = 2
# Waiting for an in-progress writer polls this often at most: a writer's commit takes a few
# milliseconds, and every poll slept past it is latency added to the relay and projectors.
WRITER_POLL_MAX_SECONDS = 0.005

_APPEND = text(
    "SELECT stream_version, last_position FROM sagaline_append("
    ":stream_id, :expected, CAST(:events AS jsonb), CAST(:claims AS jsonb),"
    " CAST(:releases AS jsonb))"
)
# Several streams in one statement, so an autocommit call is one atomic round trip.
_APPEND_STREAMS = text(
    "SELECT stream_id, stream_version, last_position"
    " FROM sagaline_append_streams(CAST(:appends AS jsonb))"
)

# Every row's position is needed to see gaps, but payloads only of the wanted types: each
# as the JSON text `[data, metadata]`, so a page's payloads are decoded in one parse.
_READ_ALL = (
    "SELECT position, stream_id, version, event_id, type, schema_version, recorded_at,"
    " CASE WHEN wanted THEN '[' || data::text || ',' || metadata::text || ']' END"
    " FROM events, LATERAL (SELECT CAST(%(types)s AS text[]) IS NULL"
    " OR type = ANY(CAST(%(types)s AS text[])) AS wanted) AS w"
    " WHERE position > %(after)s ORDER BY position LIMIT %(limit)s"
)
# The relay's page: every event with its payload as the stored JSON text, never decoded.
_READ_ALL_ENCODED = (
    "SELECT position, stream_id, version, event_id::text, type, schema_version, recorded_at,"
    " '{\"data\": ' || data::text || ', \"metadata\": ' || metadata::text || '}',"
    " metadata->>'traceparent'"
    " FROM events WHERE position > %(after)s ORDER BY position LIMIT %(limit)s"
)
_READ_STREAMS = text(
    "SELECT e.* FROM events AS e"
    " JOIN unnest(CAST(:streams AS text[]), CAST(:versions AS integer[])) AS f(stream_id, version)"
    " ON e.stream_id = f.stream_id AND e.version >= f.version"
    " ORDER BY e.stream_id, e.version"
)
# A stream's first event's type, on the driver.
_FIRST_TYPE = "SELECT type FROM events WHERE stream_id = %s ORDER BY version LIMIT 1"
# Transactions writing to `events` hold RowExclusiveLock on it until they end.
_WRITERS = text(
    "SELECT coalesce(array_agg(virtualtransaction), '{}') FROM pg_locks"
    " WHERE locktype = 'relation' AND relation = CAST('events' AS regclass)"
    " AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()"
)
_STILL_WRITING = text(
    "SELECT count(*) FROM pg_locks"
    " WHERE locktype = 'relation' AND relation = CAST('events' AS regclass)"
    " AND mode = 'RowExclusiveLock' AND virtualtransaction = ANY(CAST(:writers AS text[]))"
)


class PostgresEventStore:
    """Event store on PostgreSQL; `read_all` explains how the global order stays gap-safe.

    `append` goes to PostgreSQL on psycopg directly, through `GroupCommit`: concurrent
    appends share one statement and one commit. Reads, `append_in` and `append_with` go
    through the engine.
    """

    def __init__(self, engine: AsyncEngine, append_connections: int = APPEND_CONNECTIONS) -> None:
        self._engine = engine
        # Single statements run in autocommit: no BEGIN before, no ROLLBACK after.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        # Whatever the engine's default, `append_with` needs a real transaction.
        self._transactional = engine.execution_options(isolation_level="READ COMMITTED")
        conninfo = libpq_url(engine.url.render_as_string(hide_password=False))
        self.appends = GroupCommit(conninfo, append_connections)

    async def append(self, *streams: StreamAppend) -> AppendResult:
        """Append to one or more streams in one transaction, idempotent by event id."""
        _check_append(streams)
        with span("append", SpanKind.CLIENT, lambda: _append_attributes(streams), REFUSALS):
            try:
                return await self.appends.append(streams)
            except (WrongExpectedVersion, UniqueKeyTaken, EventIdTaken):
                replay = await self._already_appended(streams)
                if replay is not None:
                    return replay
                raise

    async def append_with(
        self, write: Callable[[AsyncConnection], Awaitable[None]], *streams: StreamAppend
    ) -> AppendResult:
        """Append and run `write` in one transaction, so both happen or neither does.

        For what belongs with an event but must never be in one (a password hash). A retry
        of an append that happened before answers its earlier result without writing again.
        """
        try:
            async with self._transactional.begin() as conn:
                result = await self.append_in(conn, *streams)
                await write(conn)
                return result
        except (WrongExpectedVersion, UniqueKeyTaken, DBAPIError):
            replay = await self._already_appended(streams)
            if replay is not None:
                return replay
            raise

    async def close(self) -> None:
        """Close the append connections; reads share the engine, which its owner disposes."""
        await self.appends.close()

    async def append_in(self, conn: AsyncConnection, *streams: StreamAppend) -> AppendResult:
        """Append in one statement, inside the caller's transaction if it has one."""
        _check_append(streams)
        with span("append", SpanKind.CLIENT, lambda: _append_attributes(streams), REFUSALS):
            return await self._append_in(conn, streams)

    async def _append_in(
        self, conn: AsyncConnection, streams: Sequence[StreamAppend]
    ) -> AppendResult:
        try:
            if len(streams) == 1:
                row = (await conn.execute(_APPEND, _append_params(streams[0]))).one()
                return AppendResult({streams[0].stream_id: row.stream_version}, row.last_position)
            appends = json.dumps([stream_json(s) for s in streams])
            rows = (await conn.execute(_APPEND_STREAMS, {"appends": appends})).all()
        except DBAPIError as error:
            business = _business_error(error, streams)
            if business is None:
                raise
            raise business from error
        versions = {row.stream_id: row.stream_version for row in rows}
        return AppendResult(versions, max(row.last_position for row in rows))

    async def _already_appended(self, streams: Sequence[StreamAppend]) -> AppendResult | None:
        """The earlier result when every event was appended before with the same content."""
        ids = [e.event_id for s in streams for e in s.events]
        async with self._autocommit.connect() as conn:
            rows = (await conn.execute(select(events).where(events.c.event_id.in_(ids)))).all()
        if not rows:
            return None
        stored = {row.event_id: _recorded(row) for row in rows}
        for stream in streams:
            for new in stream.events:
                old = stored.get(new.event_id)
                if old is None or not same_content(old, new, stream.stream_id):
                    raise EventIdConflict(new.event_id)
        versions: dict[str, int] = {}
        for recorded in stored.values():
            known = versions.get(recorded.stream_id, 0)
            versions[recorded.stream_id] = max(known, recorded.version)
        return AppendResult(versions, max(r.position for r in stored.values()))

    async def read_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """A stream's events starting at a version, forwards or backwards."""
        query = select(events).where(events.c.stream_id == stream_id)
        if backwards:
            query = query.where(events.c.version <= from_version).order_by(events.c.version.desc())
        else:
            query = query.where(events.c.version >= from_version).order_by(events.c.version)
        if limit is not None:
            query = query.limit(limit)
        async with self._autocommit.connect() as conn:
            return [_recorded(row) for row in (await conn.execute(query)).all()]

    async def first_event_type(self, stream_id: str) -> str | None:
        """The type of a stream's first event, None for a stream with no events (one
        prepared statement on the driver: the API asks this before every transfer)."""
        async with self._autocommit.connect() as conn:
            cursor = await (await driver_of(conn)).execute(_FIRST_TYPE, [stream_id], prepare=True)
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def read_streams(
        self, from_versions: Mapping[str, int]
    ) -> dict[str, list[RecordedEvent]]:
        """Several streams' events, each from its own version, in one query."""
        found: dict[str, list[RecordedEvent]] = {stream: [] for stream in from_versions}
        if not from_versions:
            return found
        params = {"streams": list(from_versions), "versions": list(from_versions.values())}
        async with self._autocommit.connect() as conn:
            rows = (await conn.execute(_READ_STREAMS, params)).all()
        for row in rows:
            found[row.stream_id].append(_recorded(row))
        return found

    async def read_all(
        self,
        after_position: int,
        limit: int,
        types: Sequence[str] | None = None,
        wait_seconds: float = 1.0,
    ) -> EventPage:
        """Events after a position in global order, never passing one that may still commit.

        Positions come from a sequence, so a transaction can take position 10, another take 11
        and commit first. When this read sees 11 but not 10, whoever drew 10 did so inside its
        INSERT into `events` before 11 was drawn, so before this read began: if it has not
        ended, it still holds its RowExclusiveLock on `events`. So the transactions holding that
        lock just after the read are the only ones that can still fill a gap below the highest
        position seen. We wait (bounded) until they have ended, read again, and treat what is
        still missing below that horizon as rolled back. Past the horizon we stop at a gap.
        """
        params = {
            "after": after_position,
            "limit": limit,
            "types": None if types is None else list(types),
        }
        taken = await self._gap_safe_rows(_READ_ALL, params, after_position, wait_seconds)
        next_position = taken[-1][0] if taken else after_position
        if types is not None:
            wanted = set(types)
            taken = [row for row in taken if row[4] in wanted]
        return EventPage(_read_page(taken), next_position)

    async def read_all_encoded(
        self, after_position: int, limit: int, wait_seconds: float = 1.0
    ) -> EncodedPage:
        """`read_all` of every type, each payload left as the JSON the store holds.

        For the relay, which passes payloads on to the broker: the server writes the
        message body from the stored JSON, so nothing is decoded here to be encoded again.
        The same gap-safe walk as `read_all`.
        """
        params = {"after": after_position, "limit": limit}
        taken = await self._gap_safe_rows(_READ_ALL_ENCODED, params, after_position, wait_seconds)
        next_position = taken[-1][0] if taken else after_position
        return EncodedPage([_encoded(row) for row in taken], next_position)

    async def _gap_safe_rows(
        self, query: str, params: Mapping[str, Any], after_position: int, wait_seconds: float
    ) -> Sequence[PageRow]:
        """The rows of a page query (position first) up to where no writer can fill a gap."""
        async with self._autocommit.connect() as conn:
            # The page's rows straight from the driver: they are many, and this is the hot
            # path of the relay and the projectors.
            driver = (await conn.get_raw_connection()).driver_connection
            rows = await _page_rows(driver, query, params)
            taken = _walk(rows, after_position, horizon=after_position)
            if len(taken) < len(rows):
                horizon = rows[-1][0]
                writers = (await conn.execute(_WRITERS)).scalar_one()
                if await _wait_for_writers(conn, writers, wait_seconds):
                    rows = await _page_rows(driver, query, params)
                    taken = _walk(rows, after_position, horizon)
        return taken

    async def head_position(self) -> int:
        """The highest committed position."""
        async with self._autocommit.connect() as conn:
            return await head_position(conn)


async def head_position(conn: AsyncConnection) -> int:
    """The highest committed position, read on the caller's connection."""
    query = select(func.coalesce(func.max(events.c.position), 0))
    return int((await conn.execute(query)).scalar_one())


def _check_append(streams: Sequence[StreamAppend]) -> None:
    if not streams or any(not s.events for s in streams):
        raise ValueError("an append needs at least one event for every stream")
    if len({s.stream_id for s in streams}) < len(streams):
        raise ValueError("an append names each stream at most once")


def _append_attributes(streams: Sequence[StreamAppend]) -> dict[str, Any]:
    return {
        "db.system.name": "postgresql",
        "sagaline.streams": [s.stream_id for s in streams],
        "sagaline.events": sum(len(s.events) for s in streams),
    }


def _append_params(stream: StreamAppend) -> dict[str, Any]:
    return {
        "stream_id": stream.stream_id,
        "expected": stream.expected_version,
        "events": json.dumps([event_json(e) for e in stream.events]),
        "claims": json.dumps(keys_json(stream.claims)),
        "releases": json.dumps(keys_json(stream.releases)),
    }


def _business_error(error: DBAPIError, streams: Sequence[StreamAppend]) -> Exception | None:
    """The event store error a failed append stands for, if it is one."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    detail = getattr(getattr(error.orig, "diag", None), "message_detail", None) or ""
    if sqlstate == "SL001":
        # One stream: DETAIL is its version; several: {"stream_id": ..., "version": ...}.
        if len(streams) == 1:
            stream, actual = streams[0], int(detail or 0)
        else:
            moved = json.loads(detail)
            stream = next(s for s in streams if s.stream_id == moved["stream_id"])
            actual = int(moved["version"])
        return WrongExpectedVersion(stream.stream_id, stream.expected_version, actual)
    if sqlstate == "SL002":
        key = json.loads(detail)
        return UniqueKeyTaken(UniqueKey(key["scope"], key["value"]))
    return None


def _recorded(row: Row[Any]) -> RecordedEvent:
    return RecordedEvent(
        position=row.position,
        stream_id=row.stream_id,
        version=row.version,
        event_id=row.event_id if isinstance(row.event_id, UUID) else UUID(str(row.event_id)),
        type=row.type,
        schema_version=row.schema_version,
        data=row.data,
        metadata=row.metadata,
        recorded_at=row.recorded_at,
    )


PageRow = tuple[Any, ...]
"""A row of `_READ_ALL`: position first, type fifth."""


async def _page_rows(driver: Any, query: str, params: Mapping[str, Any]) -> list[PageRow]:
    # Binary results: the server sends positions, ids and times without formatting them,
    # and the driver takes them without parsing text.
    cursor = await driver.execute(query, params, prepare=True, binary=True)
    return list(await cursor.fetchall())


def _read_page(rows: Sequence[PageRow]) -> list[RecordedEvent]:
    """Rows of `_READ_ALL` (each with its payload) as events, the payloads in one JSON parse.

    A page has thousands of small documents: decoded one by one, the per-call overhead of
    the decoder costs more than the parsing itself.
    """
    if not rows:
        return []
    payloads = json.loads("[" + ",".join([row[7] for row in rows]) + "]")
    return [_read(row, data, meta) for row, (data, meta) in zip(rows, payloads, strict=True)]


def _read(row: PageRow, data: JsonDict, meta: JsonDict) -> RecordedEvent:
    """A row of `_READ_ALL`, by position (the page's rows are many; this is its hot loop)."""
    position, stream_id, version, event_id, kind, schema_version, recorded_at, _ = row
    return RecordedEvent(
        position=position,
        stream_id=stream_id,
        version=version,
        event_id=event_id if isinstance(event_id, UUID) else UUID(str(event_id)),
        type=kind,
        schema_version=schema_version,
        data=data,
        metadata=meta,
        recorded_at=recorded_at,
    )


def _encoded(row: PageRow) -> EncodedEvent:
    """A row of `_READ_ALL_ENCODED`."""
    position, stream_id, version, event_id, kind, schema_version, recorded_at, body, trace = row
    return EncodedEvent(
        position, stream_id, version, event_id, kind, schema_version, recorded_at,
        body.encode(), trace,
    )  # fmt: skip


def _walk(rows: Sequence[PageRow], after: int, horizon: int) -> Sequence[PageRow]:
    """Rows in order up to the first gap above `horizon`; gaps at or below it are settled."""
    if not rows or rows[-1][0] - after == len(rows):
        return rows  # no gap at all: positions are unique and increasing
    taken: list[PageRow] = []
    cursor = after
    for row in rows:
        if row[0] > horizon and row[0] != cursor + 1:
            break
        taken.append(row)
        cursor = row[0]
    return taken


async def _wait_for_writers(conn: AsyncConnection, writers: list[str], wait_seconds: float) -> bool:
    """Wait until every transaction in `writers` has ended; False on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    delay = 0.001
    while writers:
        running = (await conn.execute(_STILL_WRITING, {"writers": writers})).scalar_one()
        if running == 0:
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, WRITER_POLL_MAX_SECONDS)
    return True
