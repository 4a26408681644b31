"""A consumer's fetch stored in consecutive transactions, the next one prepared meanwhile.

The messages of a fetch go in chunks, one transaction each, strictly one after another: a
chunk is prepared (its messages decoded) while the chunk before it is stored, and its
transaction begins only once that one committed. A consumer thus holds at most one open
transaction and never waits in Python while it holds one, so any wait between its
transaction and another consumer's is all in Postgres, which breaks a cycle as a deadlock.
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
    prepare: Callable[[Sequence[Message]], Prepared | None],
    store: Callable[[Prepared], Awaitable[bool]],
) -> int:
    """Store `messages` in chunks of `size`, each with `store` once the one before it was
    stored; how many messages from the start got stored.

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
        for start in range(0, len(messages), size):
            chunk = messages[start : start + size]
            task = asyncio.create_task(_store_after(chunk, previous, prepare, store))
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
    prepare: Callable[[Sequence[Message]], Prepared | None],
    store: Callable[[Prepared], Awaitable[bool]],
) -> bool:
    """Prepare `chunk` now, and store it once `previous` was stored; False if it was not."""
    prepared = prepare(chunk)
    if previous is not None and not await _succeeded(previous):
        return False
    if prepared is None:
        return False
    return await store(prepared)


async def _succeeded(task: asyncio.Task[bool]) -> bool:
    """Whether a chunk got stored, waiting for it; False when it failed."""
    await asyncio.wait([task])
    return not task.cancelled() and task.exception() is None and task.result()
