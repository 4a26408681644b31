"""Followers started on the task queue they once shared with the sagas move to their own.

A deployment from before the followers had a queue of their own has the relay, projectors
and pattern detector running on the sagas' queue. `start_followers` on the followers' queue
ends those runs and starts them again there, while events keep being appended: they go on
from their checkpoints, so every event is projected once and published (at least once, as
after any stop of the relay).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowExecutionStatus

from adapters.checkpoints import CheckpointMoved
from adapters.event_store import PostgresEventStore
from adapters.relay_checkpoint import RELAY_CHECKPOINT
from projections.projector import Projector, checkpoint_name
from projections.users import UsersProjection
from runtime.config import Settings
from runtime.followers import (
    create_followers_worker,
    follower_starts,
    handover,
    move_rebuilds,
    start_followers,
    start_rebuild_again,
)
from tests.kafka_support import published_ids
from tests.waiting import eventually
from tests.workflows.bank import Bank
from workflows.followers import RebuildProjectionWorkflow, rebuild_workflow_id

PROJECTIONS = ["users"]
WITHIN = 60.0


@contextlib.asynccontextmanager
async def followers_worker(
    settings: Settings,
    client: Client,
    engine: AsyncEngine,
    store: PostgresEventStore,
    task_queue: str,
) -> AsyncIterator[None]:
    """A followers' worker polling `task_queue` while the block runs."""
    queue_settings = settings.model_copy(update={"temporal_followers_task_queue": task_queue})
    async with create_followers_worker(queue_settings, client, engine, store):
        yield


async def followers_queues(client: Client) -> dict[str, tuple[str, str]]:
    """Every running follower's task queue and run id, by workflow id."""
    running = {}
    for workflow_id in follower_starts(PROJECTIONS):
        described = await client.get_workflow_handle(workflow_id).describe()
        if described.status is WorkflowExecutionStatus.RUNNING:
            running[workflow_id] = (described.task_queue, described.run_id)
    return running


async def position(engine: AsyncEngine, checkpoint: str) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT position FROM checkpoints WHERE name = :name"), {"name": checkpoint}
        )
    return int(found or 0)


async def user_rows(engine: AsyncEngine, users: list[str]) -> int:
    """How many of `users` the live users table holds."""
    async with engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM users WHERE id = ANY(:ids)"), {"ids": users}
        )
    return int(found or 0)


async def projected_user(engine: AsyncEngine, store: PostgresEventStore, client: Client) -> str:
    """A user registered and projected into the live users table."""
    user = await Bank(store, client, f"unused-{uuid.uuid4()}").user()
    live = Projector(engine, store, UsersProjection())

    async def projected() -> bool:
        # A live projector another test left running may move the checkpoint meanwhile.
        with contextlib.suppress(CheckpointMoved):
            await live.run_batch()
        return await user_rows(engine, [user]) == 1

    try:
        await eventually(projected, WITHIN, "the user was projected")
    finally:
        await live.stop_reading_ahead()
    return user


async def event_ids(engine: AsyncEngine, streams: list[str]) -> dict[str, int]:
    """The id and position of every event of `streams`."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_id::text, position FROM events WHERE stream_id = ANY(:streams)"),
            {"streams": streams},
        )
    return {str(row[0]): int(row[1]) for row in rows}


@pytest.fixture
async def ended_followers(client: Client) -> AsyncIterator[None]:
    """The followers' fixed ids, free before the test and again after it."""
    for workflow_id in follower_starts(PROJECTIONS):
        with contextlib.suppress(Exception):
            await client.get_workflow_handle(workflow_id).terminate()
    yield
    for workflow_id in follower_starts(PROJECTIONS):
        with contextlib.suppress(Exception):
            await client.get_workflow_handle(workflow_id).terminate()


@pytest.mark.usefixtures("ended_followers")
async def test_followers_on_the_shared_queue_move_to_their_own_and_lose_nothing(
    settings: Settings, client: Client, engine: AsyncEngine, store: PostgresEventStore
) -> None:
    shared = f"shared-{uuid.uuid4()}"
    own = f"followers-{uuid.uuid4()}"
    bank = Bank(store, client, shared)
    users = [await bank.user() for _ in range(5)]

    async with followers_worker(settings, client, engine, store, shared):
        await start_followers(client, shared, PROJECTIONS, handover(settings))
        before = await followers_queues(client)
        assert {queue for queue, _ in before.values()} == {shared}
        assert set(before) == set(follower_starts(PROJECTIONS))
        head = max((await event_ids(engine, users)).values())

        async def caught_up() -> bool:
            return await position(engine, checkpoint_name("users")) >= head

        await eventually(caught_up, WITHIN, "the users projection on the shared queue")

        # The new followers' worker starts while the old one still polls the shared queue,
        # and users keep registering meanwhile.
        async with followers_worker(settings, client, engine, store, own):
            moved = asyncio.Event()

            async def register_until_moved() -> None:
                while not moved.is_set():
                    users.append(await bank.user())

            registering = asyncio.create_task(register_until_moved())
            await start_followers(client, own, PROJECTIONS, handover(settings))
            moved.set()
            await registering
            assert len(users) > 10, "users registered while the followers moved"
            after = await followers_queues(client)
            assert {queue for queue, _ in after.values()} == {own}
            assert set(after) == set(before)
            for workflow_id, (_, old_run) in before.items():
                assert after[workflow_id][1] != old_run
                ended = client.get_workflow_handle(workflow_id, run_id=old_run)
                assert (await ended.describe()).status is WorkflowExecutionStatus.TERMINATED

            events = await event_ids(engine, users)
            head = max(events.values())

            async def followed() -> bool:
                projected = await position(engine, checkpoint_name("users"))
                return min(projected, await position(engine, RELAY_CHECKPOINT)) >= head

            await eventually(followed, WITHIN, "the moved projector and relay passed every user")
            # Started again, they stay where they are.
            await start_followers(client, own, PROJECTIONS, handover(settings))
            assert await followers_queues(client) == after

    async with engine.connect() as conn:
        rows = await conn.scalar(
            text("SELECT count(*) FROM users WHERE id = ANY(:ids)"), {"ids": users}
        )
    assert rows == len(users)
    published = await published_ids(
        settings.require_kafka_bootstrap(), settings.kafka_topic, WITHIN
    )
    assert [event_id for event_id in events if not published[event_id]] == []
    # The relay publishes at least once: the batch in flight when the old run ended may go
    # out again from the checkpoint (with the same ce_id), as after any stop of the relay;
    # never more than once again, and only one stretch of the order.
    again = sorted(events[event_id] for event_id in events if published[event_id] > 1)
    assert max((published[event_id] for event_id in events), default=1) <= 2
    if again:
        assert again == list(range(again[0], again[-1] + 1))


async def test_a_rebuild_left_on_another_queue_is_started_again_on_the_followers_one(
    settings: Settings, client: Client, engine: AsyncEngine, store: PostgresEventStore
) -> None:
    # No worker polls the shared queue any more: the rebuild would wait there for ever.
    shared = f"shared-{uuid.uuid4()}"
    own = f"followers-{uuid.uuid4()}"
    # A user the live table lost: only a replay from the start brings it back.
    user = await projected_user(engine, store, client)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": user})
    workflow_id = rebuild_workflow_id("users", str(uuid.uuid4()))
    stranded = await client.start_workflow(
        RebuildProjectionWorkflow.run, "users", id=workflow_id, task_queue=shared
    )

    async with followers_worker(settings, client, engine, store, own):

        async def moved() -> bool:
            return workflow_id in await move_rebuilds(client, own)

        await eventually(moved, WITHIN, "the stranded rebuild was listed and moved")
        rebuilt = client.get_workflow_handle(workflow_id)
        async with asyncio.timeout(WITHIN * 2):
            await rebuilt.result()

    first = client.get_workflow_handle(workflow_id, run_id=stranded.result_run_id)
    assert (await first.describe()).status is WorkflowExecutionStatus.TERMINATED
    described = await rebuilt.describe()
    assert described.task_queue == own
    assert described.status is WorkflowExecutionStatus.COMPLETED
    assert await user_rows(engine, [user]) == 1, "the rebuilt users table was swapped in"
    assert await move_rebuilds(client, own) == []
    # Should a rebuild listed as running complete before it is moved, it stays completed:
    # no second replay under its id.
    assert not await start_rebuild_again(client, workflow_id, "users", own)
    latest = await client.get_workflow_handle(workflow_id).describe()
    assert (latest.run_id, latest.status) == (described.run_id, WorkflowExecutionStatus.COMPLETED)
