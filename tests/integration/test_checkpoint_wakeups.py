"""Read-your-writes waits woken by the projectors' checkpoint notifications.

A wait watches its checkpoints from before its first check, so a move notified while that
check runs is not missed. On the database the notifications come from, a notification at the
position ends the wait without another check; on a replica it only ends the pause, and the
replica's own checkpoint decides.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
from sqlalchemy import delete, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

import projections.consistency
from adapters.schema import checkpoints
from projections.consistency import CheckpointWakeups, caught_up, wait_until_caught_up
from projections.projector import CHECKPOINT_CHANNEL, checkpoint_name

STORED_POSITION = 5
WANTED_POSITION = 10
# Far above a busy machine's delays: a wait that ends on a notification ends well before it.
LONG_BOUND_SECONDS = 10.0
SHORT_BOUND_SECONDS = 0.5
RESEND_SECONDS = 0.05


@pytest.fixture
async def stored(engine: AsyncEngine) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Projections whose stored checkpoints are behind WANTED_POSITION (and stay there),
    deleted afterwards: a checkpoint past the event store's head would mislead other tests'
    reads of how far the read models got."""
    names: list[str] = []

    async def projection() -> str:
        name = f"wakeups-{uuid.uuid4()}"
        names.append(checkpoint_name(name))
        async with engine.begin() as conn:
            await conn.execute(
                insert(checkpoints).values(name=checkpoint_name(name), position=STORED_POSITION)
            )
        return name

    yield projection
    async with engine.begin() as conn:
        await conn.execute(delete(checkpoints).where(checkpoints.c.name.in_(names)))


@pytest.fixture
async def projection(stored: Callable[[], Awaitable[str]]) -> str:
    """A projection whose stored checkpoint is behind WANTED_POSITION (and stays there)."""
    return await stored()


@pytest.fixture
async def listening(database_url: str) -> AsyncIterator[CheckpointWakeups]:
    wakeups = CheckpointWakeups(database_url)
    await wakeups.start()
    try:
        yield wakeups
    finally:
        await wakeups.stop()


async def notified_until_done(task: asyncio.Task[bool], notify: Callable[[], object]) -> bool:
    """Send the notification until the wait ends (the wait watches once it runs), then its
    answer; bounded by LONG_BOUND_SECONDS."""
    async with asyncio.timeout(LONG_BOUND_SECONDS):
        while not task.done():
            sent = notify()
            if asyncio.iscoroutine(sent):
                await sent
            await asyncio.wait({task}, timeout=RESEND_SECONDS)
    return task.result()


async def test_a_notified_move_ends_the_wait_without_a_check_on_the_primary(
    engine: AsyncEngine, projection: str
) -> None:
    wakeups = CheckpointWakeups("unused: the notifications are handed over directly")
    payload = f"{checkpoint_name(projection)} {WANTED_POSITION}"
    loop = asyncio.get_running_loop()
    began = loop.time()
    waiting = asyncio.create_task(
        wait_until_caught_up(
            engine,
            [projection],
            WANTED_POSITION,
            LONG_BOUND_SECONDS,
            wakeups,
            trust_notifications=True,
        )
    )

    assert await notified_until_done(waiting, lambda: wakeups.notified(payload))
    # The stored checkpoint never moved: the notification alone ended the wait.
    assert loop.time() - began < LONG_BOUND_SECONDS / 2


async def test_a_notified_move_does_not_end_the_wait_on_a_replica(
    engine: AsyncEngine, projection: str
) -> None:
    wakeups = CheckpointWakeups("unused: the notifications are handed over directly")
    payload = f"{checkpoint_name(projection)} {WANTED_POSITION}"
    waiting = asyncio.create_task(
        wait_until_caught_up(engine, [projection], WANTED_POSITION, SHORT_BOUND_SECONDS, wakeups)
    )

    assert not await notified_until_done(waiting, lambda: wakeups.notified(payload))


async def test_a_move_short_of_the_position_or_of_another_checkpoint_does_not_end_it(
    engine: AsyncEngine, projection: str
) -> None:
    wakeups = CheckpointWakeups("unused: the notifications are handed over directly")
    short = f"{checkpoint_name(projection)} {WANTED_POSITION - 1}"
    other = f"{checkpoint_name('another')} {WANTED_POSITION}"

    def both() -> None:
        wakeups.notified(short)
        wakeups.notified(other)

    waiting = asyncio.create_task(
        wait_until_caught_up(
            engine,
            [projection],
            WANTED_POSITION,
            SHORT_BOUND_SECONDS,
            wakeups,
            trust_notifications=True,
        )
    )

    assert not await notified_until_done(waiting, both)


async def test_every_projection_waited_on_must_be_notified(
    engine: AsyncEngine, projection: str, stored: Callable[[], Awaitable[str]]
) -> None:
    second = await stored()
    wakeups = CheckpointWakeups("unused: the notifications are handed over directly")
    only_first = f"{checkpoint_name(projection)} {WANTED_POSITION}"
    waiting = asyncio.create_task(
        wait_until_caught_up(
            engine,
            [projection, second],
            WANTED_POSITION,
            SHORT_BOUND_SECONDS,
            wakeups,
            trust_notifications=True,
        )
    )

    assert not await notified_until_done(waiting, lambda: wakeups.notified(only_first))


async def test_a_notification_sent_in_the_database_reaches_the_wait(
    engine: AsyncEngine, projection: str, listening: CheckpointWakeups
) -> None:
    payload = f"{checkpoint_name(projection)} {WANTED_POSITION}"

    async def notify() -> None:
        async with engine.begin() as conn:
            await conn.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHECKPOINT_CHANNEL, "payload": payload},
            )

    waiting = asyncio.create_task(
        wait_until_caught_up(
            engine,
            [projection],
            WANTED_POSITION,
            LONG_BOUND_SECONDS,
            listening,
            trust_notifications=True,
        )
    )

    assert await notified_until_done(waiting, notify)


async def test_a_watch_keeps_a_move_notified_before_it_waits() -> None:
    wakeups = CheckpointWakeups("unused: the notifications are handed over directly")
    with wakeups.watch(["projection:a"], WANTED_POSITION) as watch:
        wakeups.notified(f"projection:a {WANTED_POSITION + 1}")
        async with asyncio.timeout(LONG_BOUND_SECONDS / 2):
            await watch.wait(LONG_BOUND_SECONDS)
        assert watch.reached()


async def test_a_move_notified_once_during_the_first_check_ends_the_wait(
    engine: AsyncEngine, projection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wakeups = CheckpointWakeups("unused: the notifications are handed over directly")
    payload = f"{checkpoint_name(projection)} {WANTED_POSITION}"
    checks = 0

    async def notified_while_checking(
        engine: AsyncEngine, names: Sequence[str], position: int
    ) -> bool:
        nonlocal checks
        checks += 1
        if checks == 1:  # once only: a watch begun after this check would never see it
            wakeups.notified(payload)
        return await caught_up(engine, names, position)

    monkeypatch.setattr(projections.consistency, "caught_up", notified_while_checking)
    loop = asyncio.get_running_loop()
    began = loop.time()

    assert await wait_until_caught_up(
        engine, [projection], WANTED_POSITION, LONG_BOUND_SECONDS, wakeups, True
    )
    assert loop.time() - began < LONG_BOUND_SECONDS / 2
    assert checks == 1
