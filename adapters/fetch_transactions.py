"""A consumer's fetch stored in consecutive transactions, the next one prepared meanwhile.

The messages of a fetch go in chunks, one transaction each, strictly one after another: a
chunk is prepared (its messages decoded) while the chunk before it is stored, and its
transaction begins only once that one committed. A consumer thus holds at most one open
transaction and never waits in Python while it holds one, so any wait between its
transaction and another consumer's is all in Postgres, which breaks a cycle as a deadlock.
Preparing yields to the event loop as it goes (see `store_in_turn`), so the transaction
before it is not kept waiting on its replies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

Message = TypeVar("Message")
Prepared = TypeVar("Prepared")


async def store_in_turn(
    messages: Sequence[Message],
    size: int,
    prepare: Callable[[Sequence[Message]], Awaitable[Prepared | None]],
    store: Callable[[Prepared], Awaitable[bool]],
) -> int:
    """Store `messages` in chunks of `size`, each with `store` once the one before it was
    stored; how many messages from the start got stored.

    A chunk is prepared while the one before it is stored, and only after the one before it
    was prepared (the first chunk's transaction is not put off by the second's preparing).
    `prepare` should yield now and then: the transaction it runs beside goes on whenever a
    reply of Postgres arrives, instead of after the whole chunk is prepared.

    A chunk `prepare` cannot take (None) or `store` cannot store (False) is where it ends:
    nothing of it is stored, and the chunks after it are left untouched. An error from
    `store` is raised once the chunks already started are done.
    """
    if not messages:
        return 0
    size = max(size, 1)
    running: list[asyncio.Task[bool]] = []
    try:
        previous: asyncio.Task[bool] | None = None
        previous_prepared: asyncio.Event | None = None
        for start in range(0, len(messages), size):
            chunk = messages[start : start + size]
            prepared = asyncio.Event()
            task = asyncio.create_task(
                _store_after(chunk, previous, previous_prepared, prepared, prepare, store)
            )
            previous_prepared = prepared
            running.append(task)
            if previous is not None and not await _succeeded(previous):
                break
            previous = task
        await asyncio.wait(running)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    for task in running:
        if (error := task.exception()) is not None:
            raise error
    stored = 0
    for task in running:
        if not task.result():
            break
        stored += 1
    return min(stored * size, len(messages))


async def _store_after(
    chunk: Sequence[Message],
    previous: asyncio.Task[bool] | None,
    previous_prepared: asyncio.Event | None,
    done_preparing: asyncio.Event,
    prepare: Callable[[Sequence[Message]], Awaitable[Prepared | None]],
    store: Callable[[Prepared], Awaitable[bool]],
) -> bool:
    """Prepare `chunk` once the chunk before it is prepared, and store it once `previous`
    was stored; False if it was not."""
    try:
        if previous_prepared is not None:
            await previous_prepared.wait()
        prepared = await prepare(chunk)
    finally:
        done_preparing.set()
    if previous is not None and not await _succeeded(previous):
        return False
    if prepared is None:
        return False
    return await store(prepared)


async def _succeeded(task: asyncio.Task[bool]) -> bool:
    """Whether a chunk got stored, waiting for it; False when it failed."""
    await asyncio.wait([task])
    return not task.cancelled() and task.exception() is None and task.result()
