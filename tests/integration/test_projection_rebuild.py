"""Rebuilding a projection from position 0 gives the rows its events say, as building it live.

The oracle is a fold of each user's stored events written here, independent of the projection.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import uuid
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import ActivityEnvironment

from activities.projections import ProjectionActivities
from adapters import checkpoints
from adapters.event_store import PostgresEventStore
from adapters.follower_fence import FollowerFence
from domain.event_store import ANY, NewEvent, StreamAppend
from domain.events import DomainEvent, to_data, type_name
from domain.users import UserEmailChanged, UserLocked, UserRegistered, UserUnlocked
from projections.catalog import all_projections
from projections.projector import Projector, checkpoint_name
from projections.rebuild import REBUILD_MARK, ProjectionRebuild, drop_abandoned_rebuilds
from projections.users import UsersProjection, users
from tests.projecting import project_through


def random_user_history(rng: random.Random, count: int) -> list[tuple[str, DomainEvent]]:
    """`count` user events over many users, obeying the rules the projection relies on."""
    history: list[tuple[str, DomainEvent]] = []
    emails: dict[str, str] = {}
    while len(history) < count:
        if not emails or rng.random() < 0.3:
            user_id = f"user-{uuid.UUID(int=rng.getrandbits(128))}"
            emails[user_id] = f"{uuid.UUID(int=rng.getrandbits(128))}@example.com"
            history.append((user_id, UserRegistered(user_id, emails[user_id], "N")))
            continue
        user_id = rng.choice(list(emails))
        roll = rng.random()
        if roll < 0.6:
            new = f"{uuid.UUID(int=rng.getrandbits(128))}@example.com"
            history.append((user_id, UserEmailChanged(user_id, emails[user_id], new)))
            emails[user_id] = new
        elif roll < 0.8:
            history.append((user_id, UserLocked(user_id, "test")))
        else:
            history.append((user_id, UserUnlocked(user_id)))
    return history


async def append_history(store: PostgresEventStore, history: list[tuple[str, DomainEvent]]) -> None:
    for start in range(0, len(history), 200):
        chunk = history[start : start + 200]
        by_stream: dict[str, list[NewEvent]] = {}
        for stream, event in chunk:
            by_stream.setdefault(stream, []).append(
                NewEvent(uuid.uuid4(), type_name(event), to_data(event))
            )
        await store.append(*(StreamAppend(s, e, ANY) for s, e in by_stream.items()))


async def rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(users).order_by(users.c.id))).all())


async def catch_up(engine: AsyncEngine, store: PostgresEventStore, live: Projector) -> None:
    """Run the projector until it has passed every event committed so far."""
    await project_through(engine, live, await store.head_position())


async def test_rebuild_after_random_events_equals_the_incremental_projection(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    rng = random.Random(7)
    history = random_user_history(rng, 10_000)
    await append_history(store, history)
    live = Projector(engine, store, UsersProjection(), batch_size=1_000)
    await catch_up(engine, store, live)
    incremental = await rows(engine)
    progress: list[tuple[int, int]] = []

    result = await ProjectionRebuild(engine, store, UsersProjection()).run(
        lambda position, head: progress.append((position, head))
    )

    rebuilt = await rows(engine)
    assert rebuilt == incremental
    user_ids = {user_id for user_id, _ in history}
    assert await rows_of(engine, user_ids) == await folded(store, user_ids)
    assert len(user_ids) > 2_000
    assert result.position == (await projector_position(engine, live))
    assert progress[-1][0] == progress[-1][1] == result.position


async def test_rebuild_while_writers_and_the_live_projector_run_loses_nothing(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    rng = random.Random(11)
    history = random_user_history(rng, 3_000)
    await append_history(store, history[:1_500])
    live = Projector(engine, store, UsersProjection(), batch_size=200)
    await catch_up(engine, store, live)
    stop = asyncio.Event()

    async def keep_projecting() -> None:
        while not stop.is_set():
            if await live.run_batch(wait_seconds=0.05) == 0:
                await asyncio.sleep(0.01)

    async def served_throughout() -> int:
        reads = 0
        while not stop.is_set():
            assert await rows(engine)
            reads += 1
            await asyncio.sleep(0.02)
        return reads

    background = asyncio.gather(keep_projecting(), served_throughout())
    writers = asyncio.create_task(append_history(store, history[1_500:]))
    await ProjectionRebuild(engine, store, UsersProjection(), batch_size=500).run()
    await writers
    stop.set()
    _, reads = await background
    await catch_up(engine, store, live)

    assert reads > 0
    user_ids = {user_id for user_id, _ in history}
    assert await rows_of(engine, user_ids) == await folded(store, user_ids)


async def projector_position(engine: AsyncEngine, live: Projector) -> int:
    async with engine.begin() as conn:
        return await checkpoints.load(conn, live.checkpoint)


async def rows_of(engine: AsyncEngine, user_ids: set[str]) -> dict[str, dict[str, Any]]:
    query = select(users).where(users.c.id.in_(user_ids))
    async with engine.connect() as conn:
        return {row.id: dict(row._mapping) for row in (await conn.execute(query)).all()}


async def folded(store: PostgresEventStore, user_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Each user's row as its stored events say it should be, folded here from the stream."""
    expected: dict[str, dict[str, Any]] = {}
    for user_id in user_ids:
        row: dict[str, Any] = {}
        for event in await store.read_stream(user_id):
            if event.type == "UserRegistered":
                row = {
                    "id": user_id,
                    "email": event.data["email"],
                    "name": event.data["name"],
                    "status": "ACTIVE",
                    "registered_at": event.recorded_at,
                    "locked_version": 0,
                }
            elif event.type == "UserEmailChanged":
                row["email"] = event.data["new_email"]
            elif event.type == "UserLocked":
                row["status"], row["locked_version"] = "LOCKED", event.version
            elif event.type == "UserUnlocked":
                row["status"] = "ACTIVE"
            row["last_updated"], row["version"] = event.recorded_at, event.version
        expected[user_id] = row
    return expected


async def shadow_of(engine: AsyncEngine, token: str) -> str:
    """Tables and checkpoint for the users projection as a rebuild with `token` leaves them."""
    checkpoint = f"{checkpoint_name('users')}{REBUILD_MARK}{token}"
    async with engine.begin() as conn:
        for table in UsersProjection().tables:
            await conn.execute(
                text(f'CREATE TABLE "{table}{REBUILD_MARK}{token}" (LIKE "{table}" INCLUDING ALL)')
            )
        await checkpoints.load(conn, checkpoint)
    return checkpoint


async def shadow_tables(engine: AsyncEngine, token: str) -> list[str]:
    async with engine.connect() as conn:
        found = await conn.scalars(
            text("SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE :like"),
            {"like": f"%{REBUILD_MARK}{token}"},
        )
        return list(found)


async def test_tables_of_an_abandoned_rebuild_are_dropped_and_a_running_ones_kept(
    engine: AsyncEngine, database_url: str
) -> None:
    abandoned, running = secrets.token_hex(4), secrets.token_hex(4)
    abandoned_checkpoint = await shadow_of(engine, abandoned)
    running_checkpoint = await shadow_of(engine, running)

    async with FollowerFence(database_url, running_checkpoint) as fence:
        assert await fence.try_hold()
        dropped = await drop_abandoned_rebuilds(engine, all_projections())

        assert abandoned_checkpoint in dropped
        assert running_checkpoint not in dropped
        assert await shadow_tables(engine, abandoned) == []
        assert len(await shadow_tables(engine, running)) == len(UsersProjection().tables)
    assert running_checkpoint in await drop_abandoned_rebuilds(engine, all_projections())
    assert await shadow_tables(engine, running) == []
    async with engine.connect() as conn:
        left = await conn.scalar(
            text("SELECT count(*) FROM checkpoints WHERE name IN (:a, :b)"),
            {"a": abandoned_checkpoint, "b": running_checkpoint},
        )
    assert left == 0


async def test_a_rebuild_first_drops_what_an_abandoned_rebuild_of_its_projection_left(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    abandoned = secrets.token_hex(4)
    await shadow_of(engine, abandoned)
    activities = ProjectionActivities({}, database_url, engine, store)

    await ActivityEnvironment().run(activities.rebuild_projection, "users")

    assert await shadow_tables(engine, abandoned) == []
