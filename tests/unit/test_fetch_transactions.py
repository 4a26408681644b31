"""A fetch stored chunk after chunk: the next chunk prepared meanwhile, and claimed once the
one before it has claimed, but stored only after that one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from adapters import fetch_transactions
from adapters.fetch_transactions import Turn, store_in_turn


class Journal:
    """Prepares and stores chunks of numbers, noting every step in order."""

    def __init__(
        self,
        unpreparable: int | None = None,
        failing: int | None = None,
        slow_claim: int | None = None,
    ) -> None:
        self.steps: list[str] = []
        self.open = 0
        self.most_open = 0
        self._unpreparable = unpreparable
        self._failing = failing
        self._slow_claim = slow_claim
        self.claim_released = asyncio.Event()

    async def prepare(self, chunk: Sequence[int]) -> list[int] | None:
        self.steps.append(f"prepare {chunk[0]}")
        await asyncio.sleep(0)  # preparing yields, letting the chunk before it go on
        self.steps.append(f"prepared {chunk[0]}")
        return None if self._unpreparable in chunk else list(chunk)

    async def store(self, chunk: list[int], turn: Turn) -> bool:
        self.steps.append(f"claim {chunk[0]}")
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            if self._slow_claim in chunk:
                await self.claim_released.wait()  # waiting in Postgres for another consumer
            await asyncio.sleep(0)  # the claim's round trip
            self.steps.append(f"claimed {chunk[0]}")
            turn.claimed()
            if not await turn.previous_stored():
                self.steps.append(f"rollback {chunk[0]}")
                return False
            self.steps.append(f"handle {chunk[0]}")
            await asyncio.sleep(0)  # the handler's round trips
            await asyncio.sleep(0)
            stored = self._failing not in chunk
            self.steps.append(f"{'commit' if stored else 'rollback'} {chunk[0]}")
            return stored
        finally:
            self.open -= 1


async def test_chunks_are_committed_one_after_another_the_next_prepared_and_claimed_meanwhile() -> (
    None
):
    journal = Journal()
    assert await store_in_turn(list(range(7)), 3, journal.prepare, journal.store) == 7
    assert journal.most_open == 2
    steps = journal.steps
    commits = [step for step in steps if step.startswith("commit")]
    assert commits == ["commit 0", "commit 3", "commit 6"]
    for before, after in ((0, 3), (3, 6)):
        assert steps.index(f"prepare {after}") < steps.index(f"commit {before}")
        assert steps.index(f"claimed {before}") < steps.index(f"claim {after}")
        assert steps.index(f"commit {before}") < steps.index(f"handle {after}")


async def test_a_chunk_claims_only_once_the_one_before_it_has_claimed() -> None:
    journal = Journal(slow_claim=0)
    storing = asyncio.create_task(store_in_turn(list(range(6)), 3, journal.prepare, journal.store))
    for _ in range(20):
        await asyncio.sleep(0)
    assert "prepared 3" in journal.steps
    assert "claim 3" not in journal.steps, "a claim waits in Python behind a waiting claim"
    journal.claim_released.set()
    assert await storing == 6
    assert journal.steps.index("claimed 0") < journal.steps.index("claim 3")


async def test_a_chunk_is_prepared_only_after_the_one_before_it() -> None:
    journal = Journal()
    assert await store_in_turn(list(range(6)), 3, journal.prepare, journal.store) == 6
    assert journal.steps.index("prepared 0") < journal.steps.index("prepare 3")
    assert journal.steps.index("prepared 0") < journal.steps.index("claim 0")


@pytest.mark.parametrize("journal", [Journal(unpreparable=4), Journal(failing=4)], ids=repr)
async def test_a_chunk_that_cannot_be_stored_ends_the_run_before_it(journal: Journal) -> None:
    assert await store_in_turn(list(range(9)), 3, journal.prepare, journal.store) == 3
    assert "handle 6" not in journal.steps
    assert "commit 6" not in journal.steps


async def test_an_error_storing_a_chunk_is_raised() -> None:
    async def refuses(chunk: list[int], turn: Turn) -> bool:
        raise RuntimeError("the handler broke")

    with pytest.raises(RuntimeError, match="the handler broke"):
        await store_in_turn([1, 2], 1, Journal().prepare, refuses)


async def test_an_empty_fetch_stores_nothing() -> None:
    journal = Journal()
    assert await store_in_turn([], 3, journal.prepare, journal.store) == 0
    assert journal.steps == []


async def test_a_cancelled_fetch_rolls_back_both_open_transactions_and_leaves_no_task() -> None:
    journal = Journal()
    handling = asyncio.Event()

    async def handles_slowly(chunk: list[int], turn: Turn) -> bool:
        if chunk[0] == 0:
            journal.steps.append("claimed 0")
            turn.claimed()
            handling.set()
            await asyncio.Event().wait()  # the handler's round trip that never comes back
        return await journal.store(chunk, turn)

    storing = asyncio.create_task(store_in_turn(list(range(9)), 3, journal.prepare, handles_slowly))
    await handling.wait()
    for _ in range(1000):  # loop turns, until the next chunk has claimed
        if "claimed 3" in journal.steps:
            break
        await asyncio.sleep(0)
    assert "claimed 3" in journal.steps and journal.open == 1, "the next one waits past its claim"
    storing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await storing
    assert journal.open == 0
    # The loop is shared with other tests' background tasks: only this fetch's count.
    left = asyncio.all_tasks() - {asyncio.current_task()}
    assert [task for task in left if _runs_fetch_code(task)] == []
    assert not [step for step in journal.steps if step.startswith(("handle", "commit"))]


def _runs_fetch_code(task: asyncio.Task[object]) -> bool:
    """Whether `task` runs a coroutine of store_in_turn's module or of this one."""
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and code.co_filename in (fetch_transactions.__file__, __file__)
