"""Rebuilding a projection from position 0 into fresh tables while the live ones serve.

1. Create empty tables shaped like the live ones, under a fresh suffix.
2. Replay every event into them with their own checkpoint, reporting progress.
3. Swap, in one transaction: lock the live tables (the live projector finishes its batch and
   then waits), replay the few events between the rebuild's checkpoint and the live one, drop
   the live tables and rename the new ones into their place. The live projector then carries
   on from the same checkpoint, now writing into the rebuilt tables.

A rebuild holds a fence named after its checkpoint while it runs, so that tables a rebuild
left behind (its process was killed before it could drop them) can be told from those of
one still running, and dropped (`drop_abandoned_rebuilds`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters import checkpoints
from adapters.follower_fence import UNWATCHED, FollowerFence
from adapters.schema import checkpoints as checkpoints_table
from domain.event_store import EventStore
from projections.projector import Projection, Projector, checkpoint_name

Progress = Callable[[int, int], None]
"""Called with (position reached, head position) as a rebuild advances."""

CATCH_UP_MARGIN = 1_000
"""Stop the background replay this close to the live checkpoint; the swap does the rest."""
REBUILD_MARK = "__rebuild_"
"""Between a live table's (or checkpoint's) name and a rebuild's suffix."""


@dataclass(frozen=True)
class RebuildResult:
    """Which projection was rebuilt and the position its swapped-in tables stand at."""

    projection: str
    position: int


class ProjectionRebuild:
    """One rebuild of one projection."""

    def __init__(
        self,
        engine: AsyncEngine,
        store: EventStore,
        projection: Projection,
        batch_size: int = 2_000,
    ) -> None:
        self._engine = engine
        self._store = store
        self._projection = projection
        self._batch_size = batch_size
        suffix = f"{REBUILD_MARK}{secrets.token_hex(4)}"
        self._tables = {table: f"{table}{suffix}" for table in projection.tables}
        self._shadow = Projector(
            engine,
            store,
            projection.writing_to(self._tables),
            batch_size,
            checkpoint=f"{checkpoint_name(projection.name)}{suffix}",
        )

    async def run(self, progress: Progress | None = None) -> RebuildResult:
        """Replay into new tables, then swap them in; the live tables serve throughout."""
        # Nothing checks this fence while the rebuild runs, so no idle timeout may end its
        # session: a rebuild that outlived it would have its tables dropped as abandoned.
        fence_of_rebuild = FollowerFence(_url_of(self._engine), self._shadow.checkpoint, UNWATCHED)
        async with fence_of_rebuild as fence:
            if not await fence.try_hold():
                raise RuntimeError(f"rebuild {self._shadow.checkpoint} is held elsewhere")
            return await self._run(progress)

    async def _run(self, progress: Progress | None) -> RebuildResult:
        live_checkpoint = checkpoint_name(self._projection.name)
        await self._create_tables()
        try:
            while True:
                async with self._engine.begin() as conn:
                    live = await checkpoints.load(conn, live_checkpoint)
                    reached = await checkpoints.load(conn, self._shadow.checkpoint)
                if progress is not None:
                    progress(reached, max(live, reached))
                if live - reached <= CATCH_UP_MARGIN:
                    break
                if await self._shadow.run_batch() == 0:
                    break
            await self._shadow.stop_reading_ahead()
            position = await self._swap(live_checkpoint, reached)
        except BaseException:
            await self._shadow.stop_reading_ahead()
            await self._drop_tables()
            raise
        if progress is not None:
            progress(position, position)
        return RebuildResult(self._projection.name, position)

    async def _create_tables(self) -> None:
        async with self._engine.begin() as conn:
            quote = conn.dialect.identifier_preparer.quote
            for live, fresh in self._tables.items():
                await conn.execute(
                    text(f"CREATE TABLE {quote(fresh)} (LIKE {quote(live)} INCLUDING ALL)")
                )
            await checkpoints.load(conn, self._shadow.checkpoint)

    async def _drop_tables(self) -> None:
        async with self._engine.begin() as conn:
            quote = conn.dialect.identifier_preparer.quote
            for fresh in self._tables.values():
                await conn.execute(text(f"DROP TABLE IF EXISTS {quote(fresh)}"))
            await self._forget_checkpoint(conn)

    async def _swap(self, live_checkpoint: str, reached: int) -> int:
        async with self._engine.begin() as conn:
            quote = conn.dialect.identifier_preparer.quote
            for live in self._tables:
                await conn.execute(text(f"LOCK TABLE {quote(live)} IN ACCESS EXCLUSIVE MODE"))
            row = await conn.execute(
                select(checkpoints_table.c.position)
                .where(checkpoints_table.c.name == live_checkpoint)
                .with_for_update()
            )
            target = int(row.scalar_one())
            position = reached
            while position < target:
                page = await self._store.read_all(
                    position, self._batch_size, self._projection.event_types, wait_seconds=5.0
                )
                if page.next_position == position:
                    raise RuntimeError(f"events up to {target} are not readable yet")
                await self._shadow.apply_in(conn, [e for e in page.events if e.position <= target])
                position = min(page.next_position, target)
            for live, fresh in self._tables.items():
                await conn.execute(text(f"DROP TABLE {quote(live)}"))
                await conn.execute(text(f"ALTER TABLE {quote(fresh)} RENAME TO {quote(live)}"))
            await self._forget_checkpoint(conn)
        return target

    async def _forget_checkpoint(self, conn: AsyncConnection) -> None:
        await conn.execute(
            delete(checkpoints_table).where(checkpoints_table.c.name == self._shadow.checkpoint)
        )


async def drop_abandoned_rebuilds(
    engine: AsyncEngine, projections: Iterable[Projection]
) -> list[str]:
    """Drop the tables and checkpoint of every rebuild no process runs; returns those
    checkpoints' names.

    A rebuild runs while its fence is held; one whose fence is free was abandoned (its
    process died, or its run was ended on a worker that never ran it again).
    """
    known = {p.name: p for p in projections}
    mark = REBUILD_MARK.replace("_", "\\_")
    async with engine.connect() as conn:
        names = await conn.scalars(
            select(checkpoints_table.c.name).where(
                checkpoints_table.c.name.like(f"{checkpoint_name('')}%{mark}%")
            )
        )
        candidates = list(names)
    dropped = []
    for name in candidates:
        projection_name, _, token = name.removeprefix(checkpoint_name("")).rpartition(REBUILD_MARK)
        projection = known.get(projection_name)
        if projection is None:
            continue
        async with FollowerFence(_url_of(engine), name) as fence:
            if not await fence.try_hold():
                continue
            async with engine.begin() as conn:
                quote = conn.dialect.identifier_preparer.quote
                for table in projection.tables:
                    fresh = f"{table}{REBUILD_MARK}{token}"
                    await conn.execute(text(f"DROP TABLE IF EXISTS {quote(fresh)}"))
                await conn.execute(
                    delete(checkpoints_table).where(checkpoints_table.c.name == name)
                )
        dropped.append(name)
    return dropped


def _url_of(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=False)
