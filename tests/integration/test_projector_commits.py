"""How a projector's batch commits: waiting for its WAL to be flushed, or not."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.event_store import PostgresEventStore
from domain.event_store import NO_STREAM, NewEvent, RecordedEvent, StreamAppend
from projections.projector import Projector
from tests.projecting import RecordingProjection, project_through


class SettingProjection(RecordingProjection):
    """Remembers the `synchronous_commit` each batch's transaction runs with."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.settings: list[str] = []

    async def apply_batch(self, conn: AsyncConnection, events: Sequence[RecordedEvent]) -> None:
        await super().apply_batch(conn, events)
        setting = await conn.execute(text("SELECT current_setting('synchronous_commit')"))
        self.settings.append(str(setting.scalar_one()))


@pytest.mark.parametrize(("flush_commits", "expected"), [(True, "on"), (False, "off")])
async def test_a_batch_commits_without_waiting_for_its_flush_only_when_told(
    engine: AsyncEngine, store: PostgresEventStore, flush_commits: bool, expected: str
) -> None:
    projection = SettingProjection(f"seen_{uuid.uuid4().hex[:12]}")
    events = [NewEvent(uuid.uuid4(), projection.event_types[0], {}) for _ in range(2)]
    appended = await store.append(StreamAppend(f"seen-{uuid.uuid4()}", events, NO_STREAM))
    projector = Projector(engine, store, projection, flush_commits=flush_commits)  # type: ignore[arg-type]

    await project_through(engine, projector, appended.position)

    assert sum(len(batch) for batch in projection.batches) == 2
    assert projection.settings and set(projection.settings) == {expected}
    # The setting was the batch's transaction's own: the pooled connection is back to the
    # server's default.
    async with engine.connect() as conn:
        after = await conn.execute(text("SELECT current_setting('synchronous_commit')"))
        assert after.scalar_one() == "on"
