"""A consumer's fetch stored in consecutive transactions, the next one begun meanwhile.

The messages of a fetch go in chunks, one transaction each, committed strictly one after
another: a chunk is prepared (its messages decoded) while the chunk before it is stored; its
transaction begins and claims its messages once the one before it has claimed its own, and
does the rest (the handler, the commit) once that one committed. So a consumer holds at most
two open transactions, and the later one waits in Python only for a transaction that is past
its claim. Every transaction claims before it does anything else, and one past its claim
never waits on a claim (it takes key locks in sorted order, writes its effects), so nothing
it waits on can wait on the claims of the one waiting for it: any cycle of waits between
consumers is all in Postgres, which breaks it as a deadlock. A transaction that waits for its
claim holds back the next one's claim, so a claim never waits in Python behind another claim.
Preparing yields to the event loop as it goes, so the transaction before it is not kept
waiting on its replies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

Message = TypeVar("Message")
Prepared = TypeVar("Prepared")


class Turn:
    """A chunk's place in the fetch, as its `store` sees it: after the chunk before it
    (`before`, stored by the task `previous`), which it is prepared after, claims after and
    is stored after."""

    def __init__(self, previous: asyncio.Task[bool] | None, before: Turn | None) -> None:
        self._previous = previous
        self._before = before
        self._prepared = asyncio.Event()
        self._claimed = asyncio.Event()

    def claimed(self) -> None:
        """Say that the chunk's transaction holds its claim: the next chunk may claim its own.

        Once it said so, a store must not wait on anything in Python but `previous_stored`."""
        self._claimed.set()

    async def wait_claimed(self) -> None:
        """Wait until the chunk has claimed, or its store ended."""
        await self._claimed.wait()

    @property
    def has_claimed(self) -> bool:
        """Whether `claimed` was said (the next chunk may hold claims of its own now)."""
        return self._claimed.is_set()

    async def previous_stored(self) -> bool:
        """Wait until the chunk before this one is stored; False when it was not (the chunk
        must then not be stored either: roll back and return False)."""
        return self._previous is None or await _succeeded(self._previous)

    async def previous_claimed(self) -> bool:
        """Wait until the chunk before this one has claimed, or ended; False when it ended
        without being stored (this one then has nothing to wait for)."""
        if self._before is not None:
            await self._before.wait_claimed()
        previous = self._previous
        return previous is None or not previous.done() or await _succeeded(previous)

    async def run(
        self,
        chunk: Sequence[Message],
        prepare: Callable[[Sequence[Message]], Awaitable[Prepared | None]],
        store: Callable[[Prepared, Turn], Awaitable[bool]],
    ) -> bool:
        """Prepare `chunk` once the chunk before it is prepared, and store it once that one has
        claimed; False if it was not stored."""
        try:
            try:
                if self._before is not None:
                    await self._before._prepared.wait()
                prepared = await prepare(chunk)
            finally:
                self._prepared.set()
            if prepared is None or not await self.previous_claimed():
                return False
            return await store(prepared, self)
        finally:
            # The next chunk waits for this one's claim: it may go on once this one ended.
            self.claimed()


async def store_in_turn(
    messages: Sequence[Message],
    size: int,
    prepare: Callable[[Sequence[Message]], Awaitable[Prepared | None]],
    store: Callable[[Prepared, Turn], Awaitable[bool]],
) -> int:
    """Store `messages` in chunks of `size`; how many messages from the start got stored.

    A chunk is prepared while the one before it is stored, and only after the one before it
    was prepared. `prepare` should yield now and then: the transaction it runs beside goes on
    whenever a reply of Postgres arrives, instead of after the whole chunk is prepared.
    `store` is called once the chunk before has claimed (`Turn.claimed`) or ended; it claims,
    says so, and waits for `Turn.previous_stored` before it stores anything more.

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
        previous_turn: Turn | None = None
        for start in range(0, len(messages), size):
            turn = Turn(previous, previous_turn)
            task = asyncio.create_task(turn.run(messages[start : start + size], prepare, store))
            running.append(task)
            if previous is not None and not await _succeeded(previous):
                break
            previous, previous_turn = task, turn
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


async def _succeeded(task: asyncio.Task[bool]) -> bool:
    """Whether a chunk got stored, waiting for it; False when it failed."""
    await asyncio.wait([task])
    return not task.cancelled() and task.exception() is None and task.result()
