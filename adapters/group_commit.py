"""Group commit: appends that arrive together share one statement and one commit."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
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


class EventIdTaken(Exception):
    """An event id in the append is already stored; the caller decides if it is a replay."""


@dataclass
class _Waiting:
    streams: Sequence[StreamAppend]
    payload: str
    done: asyncio.Future[AppendResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommit:
    """Sends waiting appends as one `sagaline_append_group` call on a pool of connections.

    A caller with nobody ahead of it is sent at once, never held back for company. While
    every connection is busy, callers queue; a connection that comes free takes everything
    queued (up to MAX_GROUP) as its next group. Each caller gets its own outcome.
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
        self.groups_flushed = 0
        self.appends_flushed = 0

    async def append(self, streams: Sequence[StreamAppend]) -> AppendResult:
        """The result of appending `streams` atomically, in whatever group it joins."""
        waiting = _Waiting(streams, json.dumps([stream_json(s) for s in streams]))
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
        while not self._paused and self._waiting and len(self._flushers) < self._connections:
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
                try:
                    if self._opening is None:
                        self._opening = asyncio.ensure_future(self._pool.open())
                    await self._opening
                    async with self._pool.connection() as conn:
                        while group:
                            await self._flush(conn, group)
                            group = self._take()
                except Exception as error:  # no connection, or it broke: fail what it held
                    _fail(group, error)
        finally:
            # At once, not in the done callback: an append queued from now on must find a
            # free flusher slot, or it would wait for a flusher that never starts.
            current = asyncio.current_task()
            if current is not None:
                self._flushers.discard(current)

    async def _flush(self, conn: psycopg.AsyncConnection[Any], group: list[_Waiting]) -> None:
        """Send one group and settle every member; raises only when the connection broke."""
        payload = "[" + ",".join(w.payload for w in group) + "]"
        try:
            cursor = await conn.execute(_APPEND_GROUP, [payload], prepare=True)
            rows = await cursor.fetchall()
        except Exception as error:
            if conn.broken:
                _fail(group, error)
                raise
            if len(group) == 1:
                _fail(group, error)
                return
            # The statement failed as a whole and was rolled back: a deadlock with another
            # group, or one member's bad data. Alone, each member gets its own outcome.
            for waiting in group:
                await self._flush(conn, [waiting])
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
