"""A projection that fails on an event stops there, visibly, until retried or skipped."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from adapters import checkpoints
from adapters.database import sqlalchemy_url
from adapters.event_store import PostgresEventStore
from adapters.outages import is_outage
from adapters.schema import projection_failures
from domain.event_store import NO_STREAM, NewEvent, RecordedEvent, StreamAppend
from projections import projector
from projections.projector import Projector
from projections.users import UsersProjection, users_table
from tests.projecting import project_through


class TallyProjection:
    """Counts one test's tally events; fails while an event says `poison`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.event_types = (f"Tallied_{name}",)
        self.tables = (name,)
        self.table = Table(
            name, MetaData(), Column("id", Text, primary_key=True), Column("n", Integer)
        )
        self.cured = False

    async def apply(self, conn: AsyncConnection, event: RecordedEvent) -> None:
        if event.data.get("poison") and not self.cured:
            raise ValueError("cannot tally poison")
        await conn.execute(self.table.insert().values(id=str(event.event_id), n=event.data["n"]))

    async def apply_batch(self, conn: AsyncConnection, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            await self.apply(conn, event)

    def writing_to(self, tables: dict[str, str]) -> TallyProjection:
        raise NotImplementedError("not rebuilt in these tests")

    async def count(self, engine: AsyncEngine) -> int:
        async with engine.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(self.table))).scalar_one()
            )


async def setup(engine: AsyncEngine, store: PostgresEventStore) -> tuple[TallyProjection, int, int]:
    projection = TallyProjection(f"tally_{uuid.uuid4().hex[:12]}")
    async with engine.begin() as conn:
        await conn.run_sync(projection.table.metadata.create_all)
    stream = f"tally-{uuid.uuid4()}"
    kind = projection.event_types[0]
    events = [NewEvent(uuid.uuid4(), kind, {"n": n, "poison": n == 3}) for n in range(6)]
    result = await store.append(StreamAppend(stream, events, NO_STREAM))
    # The poison event (n == 3), and the last event.
    return projection, result.position - 2, result.position


async def test_a_failing_event_stops_the_projection_before_it_and_is_reported(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    projection, poison_position, last = await setup(engine, store)
    tally = Projector(engine, store, projection)

    await project_through(engine, tally, last)

    assert await projection.count(engine) == 3
    (status,) = await projector.status(engine, [projection.name])
    assert status.position == poison_position - 1
    assert status.failure is not None
    assert status.failure.position == poison_position
    assert status.failure.event_type == projection.event_types[0]
    assert "cannot tally poison" in status.failure.error
    assert await tally.run_batch() == 0
    assert await projection.count(engine) == 3


async def test_skip_moves_past_the_failed_event_and_the_rest_is_applied(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    projection, poison_position, last = await setup(engine, store)
    tally = Projector(engine, store, projection)
    await project_through(engine, tally, last)

    assert await projector.skip(engine, projection.name) == poison_position
    await project_through(engine, tally, last)

    assert await projection.count(engine) == 5
    (status,) = await projector.status(engine, [projection.name])
    assert status.failure is None
    assert status.position >= poison_position + 2


async def test_retry_applies_the_failed_event_once_the_cause_is_fixed(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    projection, _, last = await setup(engine, store)
    tally = Projector(engine, store, projection)
    await project_through(engine, tally, last)

    projection.cured = True
    assert await projector.retry(engine, projection.name)
    await project_through(engine, tally, last)

    assert await projection.count(engine) == 6
    assert not await projector.retry(engine, projection.name)


async def test_a_statement_cancelled_by_the_database_is_an_outage_not_a_failed_event(
    engine: AsyncEngine, database_url: str, store: PostgresEventStore
) -> None:
    table = users_table(f"users_{uuid.uuid4().hex[:12]}")
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    user_id = f"user-{uuid.uuid4()}"
    registered = NewEvent(
        uuid.uuid4(), "UserRegistered", {"user_id": user_id, "email": "a@b.c", "name": "A"}
    )
    position = (await store.append(StreamAppend(user_id, [registered], NO_STREAM))).position
    checkpoint = f"projection:timeout-{uuid.uuid4().hex[:12]}"
    # The projector's database cancels any statement running longer than 300 ms.
    impatient = create_async_engine(
        sqlalchemy_url(database_url), connect_args={"options": "-c statement_timeout=300"}
    )
    users = Projector(impatient, store, UsersProjection(table), checkpoint=checkpoint)
    async with engine.begin() as conn:
        # Start just before the registration: the session's database holds others' events too.
        at = await checkpoints.load(conn, users.checkpoint)
        await checkpoints.advance(conn, users.checkpoint, at, position - 1)
    try:
        async with engine.connect() as locker:
            await locker.execute(text(f"LOCK TABLE {table.name} IN SHARE MODE"))
            # A commit still in flight elsewhere may hold the page back for a while.
            deadline = asyncio.get_running_loop().time() + 30
            with pytest.raises(Exception) as cancelled:
                while asyncio.get_running_loop().time() < deadline:
                    await users.run_batch(wait_seconds=0.1)
            assert is_outage(cancelled.value), cancelled.value
            await locker.rollback()
        async with engine.connect() as conn:
            failures = await conn.execute(
                select(func.count())
                .select_from(projection_failures)
                .where(projection_failures.c.name == checkpoint)
            )
            assert failures.scalar_one() == 0
        await project_through(engine, users, position)
        async with engine.connect() as conn:
            stored = await conn.execute(select(table.c.email).where(table.c.id == user_id))
            assert stored.scalar_one() == "a@b.c"
    finally:
        await users.stop_reading_ahead()
        await impatient.dispose()
