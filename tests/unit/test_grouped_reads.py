"""Grouped reads: keys asked for together go in one statement, and each caller gets its own
answer, its own failure, or leaves the group by being cancelled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import psycopg
import pytest

from adapters.database import GroupedReads, ReadPool


class Connections:
    """A stand-in for ReadPool: hands out one connection object, counting checkouts."""

    def __init__(self) -> None:
        self.checkouts = 0
        self.connection_object = object()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        self.checkouts += 1
        yield self.connection_object


class Table:
    """A read of several keys from a dict, recording each statement's keys."""

    def __init__(self, rows: Mapping[str, str]) -> None:
        self.rows = dict(rows)
        self.statements: list[list[str]] = []
        self.failing: set[str] = set()
        self.outage = False
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def fetch(self, conn: Any, keys: list[str]) -> dict[str, str]:
        self.statements.append(list(keys))
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.outage:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        if self.failing.intersection(keys):
            raise psycopg.DataError("a key the statement cannot take")
        return {key: self.rows[key] for key in keys if key in self.rows}


def grouped(table: Table) -> tuple[GroupedReads[str], Connections]:
    connections = Connections()
    return GroupedReads(cast(ReadPool, connections), table.fetch), connections


async def test_reads_asked_for_together_share_one_statement_and_each_gets_its_own() -> None:
    table = Table({f"k{i}": f"v{i}" for i in range(10)})
    reads, connections = grouped(table)
    keys = [f"k{i % 10}" for i in range(25)] + ["missing", "missing"]
    answers = await asyncio.gather(*(reads.get(key) for key in keys))
    assert answers == [f"v{i % 10}" for i in range(25)] + [None, None]
    assert len(table.statements) == 1
    assert sorted(table.statements[0]) == sorted({*keys})
    assert connections.checkouts == 1


async def test_keys_asked_for_while_a_statement_runs_go_in_the_next_one() -> None:
    table = Table({"a": "1", "b": "2", "c": "3"})
    reads, _ = grouped(table)
    table.gate = asyncio.Event()
    first = asyncio.ensure_future(reads.get("a"))
    await table.entered.wait()
    later = [asyncio.ensure_future(reads.get(key)) for key in ("b", "c", "a")]
    await asyncio.sleep(0)
    assert table.statements == [["a"]]
    table.gate.set()
    assert await first == "1"
    assert await asyncio.gather(*later) == ["2", "3", "1"]
    assert table.statements == [["a"], ["b", "c", "a"]]
    # Nothing left: the next read starts a statement of its own.
    assert await reads.get("c") == "3"
    assert table.statements[-1] == ["c"]


async def test_a_cancelled_caller_leaves_the_group_and_the_others_are_answered() -> None:
    table = Table({"a": "1", "b": "2"})
    reads, _ = grouped(table)
    table.gate = asyncio.Event()
    leaving = asyncio.ensure_future(reads.get("a"))
    staying = asyncio.ensure_future(reads.get("b"))
    await table.entered.wait()
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    table.gate.set()
    assert await staying == "2"
    # A key whose every caller has left is not read at all.
    table.gate = asyncio.Event()
    blocker = asyncio.ensure_future(reads.get("b"))
    table.entered.clear()
    await table.entered.wait()
    gone = asyncio.ensure_future(reads.get("a"))
    await asyncio.sleep(0)
    gone.cancel()
    table.gate.set()
    assert await blocker == "2"
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert await reads.get("b") == "2"
    assert table.statements[2:] == [["b"]]


async def test_a_key_the_statement_refuses_fails_only_its_own_caller() -> None:
    table = Table({"a": "1", "b": "2"})
    table.failing = {"poison"}
    reads, _ = grouped(table)
    answers = await asyncio.gather(
        reads.get("a"), reads.get("poison"), reads.get("b"), return_exceptions=True
    )
    assert answers[0] == "1" and answers[2] == "2"
    assert isinstance(answers[1], psycopg.DataError)
    # The group first, then each key alone.
    assert table.statements == [["a", "poison", "b"], ["a"], ["poison"], ["b"]]


async def test_an_outage_fails_every_caller_of_the_group_and_later_reads_recover() -> None:
    table = Table({"a": "1", "b": "2"})
    table.outage = True
    reads, _ = grouped(table)
    answers = await asyncio.gather(reads.get("a"), reads.get("b"), return_exceptions=True)
    assert all(isinstance(answer, psycopg.OperationalError) for answer in answers)
    assert table.statements == [["a", "b"]]
    table.outage = False
    assert await asyncio.gather(reads.get("a"), reads.get("b")) == ["1", "2"]


async def test_callers_waiting_when_the_flusher_is_cancelled_are_cancelled_too() -> None:
    table = Table({"a": "1", "b": "2"})
    reads, _ = grouped(table)
    table.gate = asyncio.Event()
    first = asyncio.ensure_future(reads.get("a"))
    await table.entered.wait()
    queued = asyncio.ensure_future(reads.get("b"))
    await asyncio.sleep(0)
    flushers = [
        task
        for task in asyncio.all_tasks()
        if task.get_coro().__qualname__ == "GroupedReads._flush"  # type: ignore[union-attr]
    ]
    assert len(flushers) == 1
    flushers[0].cancel()
    for caller in (first, queued):
        with pytest.raises(asyncio.CancelledError):
            await caller
    table.gate.set()
    assert await reads.get("b") == "2"
