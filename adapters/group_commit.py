"""Group commit: appends that arrive together share one statement and one commit."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from domain.event_store import (
    AppendResult,
    NewEvent,
    StreamAppend,
    UniqueKey,
    UniqueKeyTaken,
    WrongExpectedVersion,
)

# One subtransaction per append: PostgreSQL keeps 64 per transaction in shared memory before
# every snapshot elsewhere gets slower, so a group stays well under that.
MAX_GROUP = 32
# How long a caller waits for a connection before its append fails.
CONNECT_TIMEOUT_SECONDS = 10.0

_APPEND_GROUP = (
    "SELECT append_index, stream_ids, stream_versions, last_position,"
    " error_code, error_stream, error_detail FROM sagaline_append_group(%s::jsonb)"
)

# A group of plain appends (one stream each, all different, exact or NO_STREAM expected
# versions, no unique keys) as one set-based statement: no subtransaction, one NOTIFY. Its one
# parameter is a JSON document, `{"s": [[stream, expected, count], ...], "e": [[stream,
# version, event id, type, schema version, data, metadata], ...]}`: the client encodes it in
# one C-accelerated call, where ten binary arrays cost several times as much, and each
# event's data and metadata are taken out as jsonb without being parsed a second time.
# Existing streams are locked first in stream id order, as `sagaline_append_group` does, so it
# queues behind other groups instead of deadlocking. An append whose stream moved gets no
# version back and is sent again the careful way, which names the conflict; a reused event id
# fails the statement, so nothing of it is kept, and the whole group is sent the careful way.
_APPEND_PLAIN = """
WITH a AS (
    SELECT s->>0 AS stream_id, (s->>1)::integer AS expected, (s->>2)::integer AS n
    FROM jsonb_array_elements(%(group)s::jsonb -> 's') AS s
),
locked AS MATERIALIZED (
    SELECT stream_id FROM streams WHERE stream_id IN (SELECT stream_id FROM a)
    ORDER BY stream_id FOR UPDATE
),
bumped AS (
    UPDATE streams AS s SET version = s.version + a.n
    FROM a JOIN locked AS l ON l.stream_id = a.stream_id
    WHERE s.stream_id = a.stream_id AND a.expected > 0 AND s.version = a.expected
    RETURNING s.stream_id, s.version
),
created AS (
    INSERT INTO streams (stream_id, version)
    SELECT stream_id, n FROM a WHERE expected = 0
    ON CONFLICT (stream_id) DO NOTHING
    RETURNING stream_id, version
),
appended AS (SELECT * FROM bumped UNION ALL SELECT * FROM created),
inserted AS (
    INSERT INTO events (event_id, stream_id, version, type, schema_version, data, metadata)
    SELECT (e->>2)::uuid, e->>0, (e->>1)::integer, e->>3, (e->>4)::smallint, e->5, e->6
    FROM jsonb_array_elements(%(group)s::jsonb -> 'e') WITH ORDINALITY AS t(e, ord)
    WHERE e->>0 IN (SELECT stream_id FROM appended)
    ORDER BY t.ord
    RETURNING stream_id, position
),
last AS (SELECT stream_id, max(position) AS position FROM inserted GROUP BY stream_id)
SELECT a.stream_id, appended.version, last.position,
       (SELECT pg_notify('sagaline_events', max(position)::text) FROM last HAVING count(*) > 0)
FROM a LEFT JOIN appended USING (stream_id) LEFT JOIN last USING (stream_id)
"""


class EventIdTaken(Exception):
    """An event id in the append is already stored; the caller decides if it is a replay."""


class _Waiting:
    """One caller's append, queued, and the future its outcome goes to."""

    __slots__ = ("done", "plain", "streams")

    def __init__(self, streams: Sequence[StreamAppend], done: asyncio.Future[AppendResult]) -> None:
        self.streams = streams
        self.done = done
        only = streams[0]
        self.plain = (
            len(streams) == 1
            and only.expected_version >= 0
            and not only.claims
            and not only.releases
        )


class GroupCommit:
    """Sends waiting appends as one statement per group on a pool of connections.

    A caller with nobody ahead of it is sent at once, never held back for company. While
    every connection is busy, callers queue; a connection that comes free takes everything
    queued (up to MAX_GROUP) as its next group. A group of plain appends goes as the
    set-based `_APPEND_PLAIN`, anything else (and whatever that cannot settle) through
    `sagaline_append_group`. Each caller gets its own outcome.
    """

    def __init__(self, conninfo: str, connections: int) -> None:
        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=connections,
            open=False,
            timeout=CONNECT_TIMEOUT_SECONDS,
            kwargs={"autocommit": True},
            name="sagaline-appends",
        )
        self._connections = connections
        self._opening: asyncio.Future[None] | None = None
        self._waiting: deque[_Waiting] = deque()
        self._flushers: set[asyncio.Task[None]] = set()
        self._paused = False
        # Flushers holding a connection between two groups, about to take the next.
        self._between_groups = 0
        self.groups_flushed = 0
        self.appends_flushed = 0
        self.plain_groups_flushed = 0

    async def append(self, streams: Sequence[StreamAppend]) -> AppendResult:
        """The result of appending `streams` atomically, in whatever group it joins."""
        waiting = _Waiting(streams, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        self._start_flushers()
        return await waiting.done

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Hold every group until the block ends, so the appends made meanwhile form one."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False
            self._start_flushers()

    @property
    def waiting(self) -> int:
        """How many appends are queued, not yet sent."""
        return len(self._waiting)

    def pool_stats(self) -> dict[str, int]:
        """The connection pool's usage (psycopg_pool's `get_stats`), for metrics."""
        return self._pool.get_stats()

    async def close(self) -> None:
        """Let the groups being sent finish, then close the connections, if any were opened."""
        await asyncio.gather(*self._flushers, return_exceptions=True)
        if self._opening is not None:
            await asyncio.gather(self._opening, return_exceptions=True)
            await self._pool.close()

    def _start_flushers(self) -> None:
        while (
            not self._paused
            and self._waiting
            and not self._between_groups
            and len(self._flushers) < self._connections
        ):
            # Kept until done: the loop holds tasks only weakly.
            flusher = asyncio.get_running_loop().create_task(self._flush_waiting())
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)

    def _take(self) -> list[_Waiting]:
        group: list[_Waiting] = []
        while self._waiting and not self._paused and len(group) < MAX_GROUP:
            waiting = self._waiting.popleft()
            if not waiting.done.done():  # a caller cancelled before it was sent
                group.append(waiting)
        return group

    async def _flush_waiting(self) -> None:
        try:
            # Taken again after the connection is back in the pool: appends that queued while
            # it was being returned found every flusher busy and started none.
            while group := self._take():
                sent: list[_Waiting] = []
                try:
                    if self._opening is None:
                        self._opening = asyncio.ensure_future(self._pool.open())
                    await self._opening
                    async with self._pool.connection() as conn:
                        while group:
                            sent, group = group, []
                            await self._flush(conn, sent)
                            # The callers just settled append again in the steps that run
                            # now; one turn of the loop lets them queue for this connection.
                            self._between_groups += 1
                            try:
                                await asyncio.sleep(0)
                            finally:
                                self._between_groups -= 1
                            group = self._take()
                            self._start_flushers()  # for what is left beyond MAX_GROUP
                except Exception as error:  # no connection, or it broke: fail what it held
                    _fail(sent, error)  # `_flush` settles what it was given, but to be sure
                    _fail(group, error)  # not sent
        finally:
            # At once, not in the done callback: an append queued from now on must find a
            # free flusher slot, or it would wait for a flusher that never starts.
            current = asyncio.current_task()
            if current is not None:
                self._flushers.discard(current)

    async def _flush(self, conn: psycopg.AsyncConnection[Any], group: list[_Waiting]) -> None:
        """Send one group and settle every member; raises only when the connection broke."""
        if _all_plain(group):
            try:
                cursor = await conn.execute(_APPEND_PLAIN, _plain_params(group), prepare=True)
                rows = await cursor.fetchall()
            except Exception as error:
                if conn.broken:
                    _fail(group, error)
                    raise
            else:
                group = self._settle_plain(group, rows)
                if not group:
                    return
        await self._flush_careful(conn, group)

    def _settle_plain(self, group: list[_Waiting], rows: list[tuple[Any, ...]]) -> list[_Waiting]:
        """Settle the members the plain statement appended; the rest, whose stream moved."""
        outcomes = {stream_id: (version, position) for stream_id, version, position, _ in rows}
        moved: list[_Waiting] = []
        settled = 0
        for waiting in group:
            stream_id = waiting.streams[0].stream_id
            version, position = outcomes[stream_id]
            if version is None:
                moved.append(waiting)
                continue
            settled += 1
            if not waiting.done.done():
                waiting.done.set_result(AppendResult({stream_id: version}, position))
        if settled:
            self.groups_flushed += 1
            self.plain_groups_flushed += 1
            self.appends_flushed += settled
        return moved

    async def _flush_careful(
        self, conn: psycopg.AsyncConnection[Any], group: list[_Waiting]
    ) -> None:
        """Send a group through `sagaline_append_group`, each member in its own subtransaction."""
        try:
            payload = json.dumps([[stream_json(s) for s in w.streams] for w in group])
            cursor = await conn.execute(_APPEND_GROUP, [payload], prepare=True)
            rows = await cursor.fetchall()
        except Exception as error:
            if conn.broken:
                _fail(group, error)
                raise
            if len(group) == 1:
                _fail(group, error)
                return
            # The statement failed as a whole and was rolled back, or was never sent: a
            # deadlock with another group, or one member's bad data (data the database
            # refuses, or that is not JSON at all). Alone, each member gets its own outcome.
            for waiting in group:
                await self._flush_careful(conn, [waiting])
            return
        self.groups_flushed += 1
        self.appends_flushed += len(group)
        for waiting, row in zip(group, rows, strict=True):
            if waiting.done.done():
                continue
            outcome = _outcome(waiting.streams, row)
            if isinstance(outcome, Exception):
                waiting.done.set_exception(outcome)
            else:
                waiting.done.set_result(outcome)


def _outcome(streams: Sequence[StreamAppend], row: tuple[Any, ...]) -> AppendResult | Exception:
    _, stream_ids, versions, last_position, code, failed_stream, detail = row
    if code is None:
        return AppendResult(dict(zip(stream_ids, versions, strict=True)), last_position)
    if code == "SL001":
        stream = next(s for s in streams if s.stream_id == failed_stream)
        return WrongExpectedVersion(stream.stream_id, stream.expected_version, int(detail or 0))
    if code == "SL002":
        key = json.loads(detail)
        return UniqueKeyTaken(UniqueKey(key["scope"], key["value"]))
    return EventIdTaken(detail or "")


def _all_plain(group: Sequence[_Waiting]) -> bool:
    if not all(w.plain for w in group):
        return False
    return len({w.streams[0].stream_id for w in group}) == len(group)


def _plain_params(group: Sequence[_Waiting]) -> dict[str, str]:
    """The plain statement's parameter: one entry per append, and one per event."""
    streams: list[list[Any]] = []
    events: list[list[Any]] = []
    for waiting in group:
        stream = waiting.streams[0]
        stream_id, version = stream.stream_id, stream.expected_version
        streams.append([stream_id, version, len(stream.events)])
        for event in stream.events:
            version += 1
            events.append(
                [
                    stream_id,
                    version,
                    str(event.event_id),
                    event.type,
                    event.schema_version,
                    event.data,
                    event.metadata,
                ]
            )
    return {"group": json.dumps({"s": streams, "e": events})}


def _fail(group: Sequence[_Waiting], error: Exception) -> None:
    for waiting in group:
        if not waiting.done.done():
            waiting.done.set_exception(error)


def stream_json(stream: StreamAppend) -> dict[str, Any]:
    """One stream's part of an append, as the SQL append functions take it."""
    return {
        "stream_id": stream.stream_id,
        "expected": stream.expected_version,
        "events": [event_json(e) for e in stream.events],
        "claims": keys_json(stream.claims),
        "releases": keys_json(stream.releases),
    }


def keys_json(keys: Sequence[UniqueKey]) -> list[dict[str, str]]:
    return [{"scope": k.scope, "value": k.value} for k in keys]


def event_json(event: NewEvent) -> dict[str, Any]:
    return {
        "event_id": str(event.event_id),
        "type": event.type,
        "schema_version": event.schema_version,
        "data": event.data,
        "metadata": event.metadata,
    }
