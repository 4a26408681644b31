"""Rebuilding a projection from position 0 gives the same rows as building it live."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import checkpoints
from adapters.event_store import PostgresEventStore
from domain.event_store import ANY, NewEvent, StreamAppend
from domain.events import DomainEvent, to_data, type_name
from domain.users import UserEmailChanged, UserLocked, UserRegistered, UserUnlocked
from projections.projector import Projector
from projections.rebuild import ProjectionRebuild
from projections.users import UsersProjection, users


def random_user_history(rng: random.Random, count: int) -> list[tuple[str, DomainEvent]]:
    """`count` user events over many users, obeying the rules the projection relies on."""
    history: list[tuple[str, DomainEvent]] = []
    emails: dict[str, str] = {}
    while len(history) < count:
        if not emails or rng.random() < 0.3:
            user_id = f"user-{uuid.UUID(int=rng.getrandbits(128))}"
            emails[user_id] = f"{uuid.UUID(int=rng.getrandbits(128))}@example.com"
            history.append((user_id, UserRegistered(user_id, emails[user_id], "N", "h")))
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
    head = await store.head_position()
    while await projector_position(engine, live) < head:
        await live.run_batch(wait_seconds=1.0)


async def test_rebuild_after_random_events_equals_the_incremental_projection(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    rng = random.Random(7)
    await append_history(store, random_user_history(rng, 10_000))
    live = Projector(engine, store, UsersProjection(), batch_size=1_000)
    await catch_up(engine, store, live)
    incremental = await rows(engine)
    progress: list[tuple[int, int]] = []

    result = await ProjectionRebuild(engine, store, UsersProjection()).run(
        lambda position, head: progress.append((position, head))
    )

    rebuilt = await rows(engine)
    assert rebuilt == incremental
    assert len(rebuilt) > 2_000
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
    expected = await rebuild_copy(engine, store)
    assert await rows(engine) == expected


async def projector_position(engine: AsyncEngine, live: Projector) -> int:
    async with engine.begin() as conn:
        return await checkpoints.load(conn, live.checkpoint)


async def rebuild_copy(engine: AsyncEngine, store: PostgresEventStore) -> list[Any]:
    """The rows a second, quiet rebuild produces: the reference for the concurrent one."""
    await ProjectionRebuild(engine, store, UsersProjection()).run()
    return await rows(engine)
