"""Aggregate snapshots in PostgreSQL: one row per stream, newest wins."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.schema import snapshots
from domain.event_store import Snapshot


class PostgresSnapshotStore:
    """Keeps the newest snapshot of each stream."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def load_many(self, stream_ids: Sequence[str]) -> dict[str, Snapshot]:
        """The newest snapshot of each stream that has one, in one query."""
        query = select(snapshots).where(snapshots.c.stream_id.in_(stream_ids))
        async with self._autocommit.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {
            row.stream_id: Snapshot(
                row.stream_id, row.version, row.aggregate_type, row.schema_version, row.state
            )
            for row in rows
        }

    async def save(self, snapshot: Snapshot) -> None:
        """Keep a snapshot unless a newer one is already stored."""
        statement = insert(snapshots).values(
            stream_id=snapshot.stream_id,
            version=snapshot.version,
            aggregate_type=snapshot.aggregate_type,
            schema_version=snapshot.schema_version,
            state=snapshot.state,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[snapshots.c.stream_id],
            set_={
                "version": statement.excluded.version,
                "aggregate_type": statement.excluded.aggregate_type,
                "schema_version": statement.excluded.schema_version,
                "state": statement.excluded.state,
            },
            where=snapshots.c.version < statement.excluded.version,
        )
        async with self._engine.begin() as conn:
            await conn.execute(statement)
