"""Runs projections: each follows the global order and moves its checkpoint with its rows.

A projection that fails on an event stops there: the event and the error are recorded, the
checkpoint stays before it, and nothing after it is applied until an operator retries (the
projector tries the event again) or skips it (the checkpoint moves past it). An outage
(`adapters.outages.is_outage`: the database unreachable, a statement cancelled or timed out, a
deadlock, a lock timeout, an administrator's shutdown) is never a failure of the event: it
reaches the projector's caller, which runs the batch again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters import checkpoints
from adapters.database import driver_of
from adapters.event_store import head_position
from adapters.outages import is_outage
from adapters.read_ahead import ReadAhead
from adapters.schema import projection_failures
from domain.event_store import EventStore, RecordedEvent

log = logging.getLogger(__name__)

_START = (
    "SELECT position, EXISTS (SELECT FROM projection_failures WHERE name = %(name)s)"
    " FROM checkpoints WHERE name = %(name)s"
)
CHECKPOINT_CHANNEL = "sagaline_checkpoints"
"""A projector's moves are notified here (payload "<checkpoint> <position>") when they commit."""
_ADVANCE = (
    "UPDATE checkpoints SET position = %(position)s, updated_at = now()"
    " WHERE name = %(name)s AND position = %(expected)s"
    f" RETURNING pg_notify('{CHECKPOINT_CHANNEL}', name || ' ' || position)"
)


_NO_FLUSH_WAIT = "SET LOCAL synchronous_commit TO OFF"


async def _commit_without_flush(conn: AsyncConnection) -> None:
    """Let the transaction's commit return before its WAL reaches the disk.

    The commit is visible, and its checkpoint's notification sent, at once: the disk sync
    is off the path of every answer that waits for a read model. A batch's rows and its
    checkpoint commit together and the WAL is written in order, so a database crash can lose
    only the last whole batches, their checkpoint moves with them: the projector starts again
    from the checkpoint that survived and applies those events again. The events themselves
    are the event store's, committed with a flush. A reader then waits on the checkpoint
    (`consistentWith`) until it is back. Not for read models read on a replica: a standby
    receives WAL only once it is flushed, up to three times `wal_writer_delay` later.
    """
    await (await driver_of(conn)).execute(_NO_FLUSH_WAIT)


class Projection(Protocol):
    """A read model: its name, tables, the events it reads, how one event changes its rows."""

    name: str
    tables: tuple[str, ...]
    event_types: tuple[str, ...]

    async def apply(self, conn: AsyncConnection, event: RecordedEvent) -> None:
        """Change the read model for one event."""
        ...

    async def apply_batch(self, conn: AsyncConnection, events: Sequence[RecordedEvent]) -> None:
        """Change the read model for a batch of events, in order."""
        ...

    def writing_to(self, tables: dict[str, str]) -> Projection:
        """The same projection writing into other tables (live name -> other name)."""
        ...


def checkpoint_name(projection_name: str) -> str:
    """The checkpoint a projection keeps its position in."""
    return f"projection:{projection_name}"


@dataclass(frozen=True)
class ProjectionFailure:
    """The event a projection stopped on, and why."""

    position: int
    event_id: str
    event_type: str
    error: str
    failed_at: datetime


@dataclass(frozen=True)
class ProjectionStatus:
    """Where a projection is, how far behind the head, and whether it stopped."""

    name: str
    position: int
    lag: int
    failure: ProjectionFailure | None


class Projector:
    """Brings one projection up to date, batch by batch, exactly once per event."""

    def __init__(
        self,
        engine: AsyncEngine,
        store: EventStore,
        projection: Projection,
        batch_size: int = 500,
        checkpoint: str | None = None,
        flush_commits: bool = True,
    ) -> None:
        """`flush_commits=False`: a batch's commit returns before its WAL is on disk (see
        `_commit_without_flush`); for read models read on this database, not a replica."""
        self._engine = engine
        self._flush_commits = flush_commits
        self._store = store
        self._projection = projection
        self._batch_size = batch_size
        self._checkpoint = checkpoint or checkpoint_name(projection.name)
        # Every wake-up of the projector asks where to start, and a page without events of
        # the projection's types only moves the checkpoint: both are one statement on the
        # driver, outside a transaction, instead of a transaction through SQLAlchemy.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        # The next page is read while the current one is applied; the checkpoint still
        # decides where each batch starts.
        self._pages = ReadAhead(
            lambda position, wait: store.read_all(
                position, batch_size, projection.event_types, wait
            ),
            lambda position, page: page.next_position - position >= batch_size,
        )
        # Where this projector's last batch left the checkpoint: the next batch starts there
        # without asking. Only this projector moves its checkpoint while it holds its fence,
        # and every move is conditional on the position it expects, so a checkpoint moved by
        # anyone else is noticed at the next move, which then starts again from the database.
        # Forgotten on any error, on a stop at an event, and when the follower hands back.
        self._position: int | None = None

    @property
    def batch_size(self) -> int:
        """The positions a full page spans: a batch that moved less read all there was."""
        return self._batch_size

    @property
    def checkpoint(self) -> str:
        """The name of the checkpoint this projector moves."""
        return self._checkpoint

    async def run_batch(self, wait_seconds: float = 0.5) -> int:
        """Apply the next batch; returns how far the checkpoint moved (0: up to date or stopped)."""
        remembered = self._position is not None
        try:
            return await self._run_batch(wait_seconds)
        except checkpoints.CheckpointMoved:
            self._position = None
            if not remembered:
                raise
            # Moved since this projector's last batch: start again from where it is now.
            return await self.run_batch(wait_seconds)
        except BaseException:
            self._position = None
            raise

    async def _run_batch(self, wait_seconds: float) -> int:
        position = self._position
        if position is None:
            position = await self._start()
            if position is None:
                return 0
            self._position = position
        page = await self._pages.page(position, wait_seconds)
        if page.next_position == position:
            return 0
        if not page.events:
            await self._advance_only(position, page.next_position)
            self._position = page.next_position
            return page.next_position - position
        try:
            async with self._engine.begin() as conn:
                if not self._flush_commits:
                    await _commit_without_flush(conn)
                await self.apply_in(conn, page.events)
                await self._advance(conn, position, page.next_position)
        except Exception as error:
            if _not_the_events(error):
                raise
            self._position = None
            return await self._one_by_one(position, page.events, page.next_position)
        self._position = page.next_position
        return page.next_position - position

    async def _start(self) -> int | None:
        """The checkpoint's position, or None while the projection is stopped on an event."""
        params = {"name": self._checkpoint}
        async with self._autocommit.connect() as conn:
            cursor = await (await driver_of(conn)).execute(_START, params, prepare=True)
            row = await cursor.fetchone()
        if row is not None:
            position, stopped = row
            return None if stopped else int(position)
        # The first batch ever: create the checkpoint.
        async with self._engine.begin() as conn:
            if await _failure(conn, self._checkpoint) is not None:
                return None
            return await checkpoints.load(conn, self._checkpoint)

    async def _advance_only(self, position: int, next_position: int) -> None:
        """Move the checkpoint past a page with nothing to apply (one atomic statement)."""
        async with self._autocommit.connect() as conn:
            await self._advance(conn, position, next_position)

    async def _advance(self, conn: AsyncConnection, position: int, next_position: int) -> None:
        """Move the checkpoint on `conn` (in its transaction, if any) and notify the move."""
        params = {"name": self._checkpoint, "expected": position, "position": next_position}
        cursor = await (await driver_of(conn)).execute(_ADVANCE, params, prepare=True)
        if cursor.rowcount != 1:
            raise checkpoints.CheckpointMoved(self._checkpoint, position)

    async def stop_reading_ahead(self) -> None:
        """Cancel a read ahead that will not be used (the follower is done, or moved), and
        forget where the checkpoint was: another instance may move it before this one runs
        again."""
        self._position = None
        await self._pages.stop()

    async def apply_in(self, conn: AsyncConnection, batch: Sequence[RecordedEvent]) -> None:
        """Apply events inside the caller's transaction."""
        if batch:
            await self._projection.apply_batch(conn, batch)

    async def _one_by_one(
        self, position: int, batch: Sequence[RecordedEvent], batch_end: int
    ) -> int:
        """Apply a failed batch event by event, to stop exactly before the event that fails."""
        start = position
        for event in batch:
            try:
                async with self._engine.begin() as conn:
                    await self._projection.apply(conn, event)
                    await checkpoints.advance(conn, self._checkpoint, position, event.position)
            except Exception as error:
                if _not_the_events(error):
                    raise
                await self._stop_at(position, event, error)
                return position - start
            position = event.position
        async with self._engine.begin() as conn:
            await checkpoints.advance(conn, self._checkpoint, position, batch_end)
        return batch_end - start

    async def _stop_at(self, position: int, event: RecordedEvent, error: Exception) -> None:
        log.error(
            "projection %s stopped at position %d (%s): %r",
            self._checkpoint,
            event.position,
            event.type,
            error,
        )
        async with self._engine.begin() as conn:
            await checkpoints.advance(conn, self._checkpoint, position, event.position - 1)
            await conn.execute(
                insert(projection_failures).values(
                    name=self._checkpoint,
                    position=event.position,
                    event_id=event.event_id,
                    event_type=event.type,
                    error=f"{type(error).__name__}: {error}"[:2000],
                )
            )


async def status(engine: AsyncEngine, names: Sequence[str]) -> list[ProjectionStatus]:
    """Position, lag and failure of each named projection."""
    async with engine.begin() as conn:
        head = await head_position(conn)
        result = []
        for name in names:
            checkpoint = checkpoint_name(name)
            position = await checkpoints.load(conn, checkpoint)
            result.append(
                ProjectionStatus(name, position, head - position, await _failure(conn, checkpoint))
            )
    return result


async def retry(engine: AsyncEngine, name: str) -> bool:
    """Let a stopped projection try its failed event again; False if it was not stopped."""
    async with engine.begin() as conn:
        result = await conn.execute(
            delete(projection_failures).where(projection_failures.c.name == checkpoint_name(name))
        )
    return bool(result.rowcount)


async def skip(engine: AsyncEngine, name: str) -> int | None:
    """Move a stopped projection past its failed event; the skipped position, or None."""
    checkpoint = checkpoint_name(name)
    async with engine.begin() as conn:
        failure = await _failure(conn, checkpoint)
        if failure is None:
            return None
        await checkpoints.advance(conn, checkpoint, failure.position - 1, failure.position)
        await conn.execute(
            delete(projection_failures).where(projection_failures.c.name == checkpoint)
        )
    return failure.position


def _not_the_events(error: Exception) -> bool:
    """Whether a failed batch says nothing about its events: an outage (the statements go to
    psycopg directly, so its own errors arrive unwrapped; `is_outage` knows both), or another
    projector moved the checkpoint. The caller retries these; they never stop the projection."""
    return is_outage(error) or isinstance(error, checkpoints.CheckpointMoved)


async def _failure(conn: AsyncConnection, checkpoint: str) -> ProjectionFailure | None:
    query = select(projection_failures).where(projection_failures.c.name == checkpoint)
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        return None
    return ProjectionFailure(
        row.position, str(row.event_id), row.event_type, row.error, row.failed_at
    )
