"""A fetch stored chunk after chunk: the next chunk prepared meanwhile, begun only after."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from adapters.fetch_transactions import store_in_turn


class Journal:
    """Prepares and stores chunks of numbers, noting every step in order."""

    def __init__(self, unpreparable: int | None = None, failing: int | None = None) -> None:
        self.steps: list[str] = []
        self.open = 0
        self.most_open = 0
        self._unpreparable = unpreparable
        self._failing = failing

    async def prepare(self, chunk: Sequence[int]) -> list[int] | None:
        self.steps.append(f"prepare {chunk[0]}")
        await asyncio.sleep(0)  # preparing yields, letting the chunk before it go on
        self.steps.append(f"prepared {chunk[0]}")
        return None if self._unpreparable in chunk else list(chunk)

    async def store(self, chunk: list[int]) -> bool:
        self.steps.append(f"begin {chunk[0]}")
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        await asyncio.sleep(0)  # the round trips, during which the next chunk is prepared
        await asyncio.sleep(0)
        self.open -= 1
        self.steps.append(f"commit {chunk[0]}")
        return self._failing not in chunk


async def test_chunks_are_stored_one_after_another_the_next_prepared_meanwhile() -> None:
    journal = Journal()
    assert await store_in_turn(list(range(7)), 3, journal.prepare, journal.store) == 7
    assert journal.most_open == 1
    begins = [step for step in journal.steps if "begin" in step or "commit" in step]
    assert begins == ["begin 0", "commit 0", "begin 3", "commit 3", "begin 6", "commit 6"]
    assert journal.steps.index("prepare 3") < journal.steps.index("commit 0")
    assert journal.steps.index("prepare 6") < journal.steps.index("commit 3")


@pytest.mark.parametrize("journal", [Journal(unpreparable=4), Journal(failing=4)], ids=repr)
async def test_a_chunk_that_cannot_be_stored_ends_the_run_before_it(journal: Journal) -> None:
    assert await store_in_turn(list(range(9)), 3, journal.prepare, journal.store) == 3
    assert "begin 6" not in journal.steps


async def test_an_error_storing_a_chunk_is_raised() -> None:
    async def refuses(chunk: list[int]) -> bool:
        raise RuntimeError("the handler broke")

    with pytest.raises(RuntimeError, match="the handler broke"):
        await store_in_turn([1, 2], 1, Journal().prepare, refuses)


async def test_a_chunk_is_prepared_only_after_the_one_before_it() -> None:
    journal = Journal()
    assert await store_in_turn(list(range(6)), 3, journal.prepare, journal.store) == 6
    assert journal.steps.index("prepared 0") < journal.steps.index("prepare 3")
    assert journal.steps.index("prepared 0") < journal.steps.index("begin 0")


async def test_an_empty_fetch_stores_nothing() -> None:
    journal = Journal()
    assert await store_in_turn([], 3, journal.prepare, journal.store) == 0
    assert journal.steps == []
