"""Grouped reads: keys asked for together go in one statement, and each caller gets its own
answer, its own failure, or leaves the group by being cancelled; no caller is ever left
waiting. Each test is bounded, so that a caller left waiting fails it rather than hanging."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any, cast

import psycopg
import pytest

from adapters.database import READ_CONNECT_TIMEOUT_SECONDS, GroupedReads, ReadPool


class Connection:
    def __init__(self) -> None:
        self.broken = False


class Connections:
    """A stand-in for ReadPool: hands out connections, counting checkouts and the waits
    asked for."""

    def __init__(self) -> None:
        self.checkouts = 0
        self.waits: list[float | None] = []
        self.handed: list[Connection] = []

    @contextlib.asynccontextmanager
    async def connection(self, wait_seconds: float | None = None) -> AsyncIterator[Any]:
        self.checkouts += 1
        self.waits.append(wait_seconds)
        self.handed.append(Connection())
        yield self.handed[-1]


class Table:
    """A read of several keys from a dict, recording each statement's keys."""

    def __init__(self, rows: Mapping[str, str]) -> None:
        self.rows = dict(rows)
        self.statements: list[list[str]] = []
        self.failing: set[str] = set()
        self.outage = False
        self.deaths = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.hold: list[str] | None = None
        self.held = asyncio.Event()

    async def fetch(self, conn: Any, keys: list[str]) -> dict[str, str]:
        self.statements.append(list(keys))
        self.entered.set()
        if self.gate is not None and self.hold in (None, keys):
            self.held.set()
            await self.gate.wait()
        if self.deaths:
            self.deaths -= 1
            conn.broken = True
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        if self.outage:
            raise psycopg.OperationalError("connection refused")
        if self.failing.intersection(keys):
            raise psycopg.DataError("a key the statement cannot take")
        return {key: self.rows[key] for key in keys if key in self.rows}


TEST_SECONDS = 10.0

Test = Callable[[], Coroutine[Any, Any, None]]


def bounded(test: Test) -> Test:
    """The test within TEST_SECONDS: a caller left waiting fails it instead of hanging."""

    @functools.wraps(test)
    async def within() -> None:
        async with asyncio.timeout(TEST_SECONDS):
            await test()

    return within


def grouped(table: Table) -> tuple[GroupedReads[str], Connections]:
    connections = Connections()
    return GroupedReads(cast(ReadPool, connections), table.fetch), connections


@bounded
async def test_reads_asked_for_together_share_one_statement_and_each_gets_its_own() -> None:
    table = Table({f"k{i}": f"v{i}" for i in range(10)})
    reads, connections = grouped(table)
    keys = [f"k{i % 10}" for i in range(25)] + ["missing", "missing"]
    answers = await asyncio.gather(*(reads.get(key) for key in keys))
    assert answers == [f"v{i % 10}" for i in range(25)] + [None, None]
    assert len(table.statements) == 1
    assert sorted(table.statements[0]) == sorted({*keys})
    assert connections.checkouts == 1


@bounded
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


@bounded
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


@bounded
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


@bounded
async def test_an_outage_fails_every_caller_of_the_group_and_later_reads_recover() -> None:
    table = Table({"a": "1", "b": "2"})
    table.outage = True
    reads, _ = grouped(table)
    answers = await asyncio.gather(reads.get("a"), reads.get("b"), return_exceptions=True)
    assert all(isinstance(answer, psycopg.OperationalError) for answer in answers)
    assert table.statements == [["a", "b"]]
    table.outage = False
    assert await asyncio.gather(reads.get("a"), reads.get("b")) == ["1", "2"]


@bounded
async def test_callers_waiting_when_the_flusher_is_cancelled_are_cancelled_too() -> None:
    table = Table({"a": "1", "b": "2"})
    reads, _ = grouped(table)
    table.gate = asyncio.Event()
    first = asyncio.ensure_future(reads.get("a"))
    await table.entered.wait()
    queued = asyncio.ensure_future(reads.get("b"))
    await asyncio.sleep(0)
    flusher = reads._flusher
    assert flusher is not None
    flusher.cancel()
    for caller in (first, queued):
        with pytest.raises(asyncio.CancelledError):
            await caller
    table.gate.set()
    assert await reads.get("b") == "2"


@bounded
async def test_a_flusher_cancelled_while_it_reads_keys_alone_leaves_no_caller_waiting() -> None:
    table = Table({"a": "1", "b": "2", "c": "3"})
    table.failing = {"b"}
    table.gate, table.hold = asyncio.Event(), ["a"]
    reads, _ = grouped(table)
    callers = [asyncio.ensure_future(reads.get(key)) for key in ("a", "b", "c")]
    await table.held.wait()  # the group refused, then "a" alone held
    assert table.statements == [["a", "b", "c"], ["a"]]
    flusher = reads._flusher
    assert flusher is not None
    flusher.cancel()
    outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
    assert reads._flusher is None


@bounded
async def test_an_outage_while_keys_are_read_alone_fails_the_rest_without_reading_them() -> None:
    table = Table({"a": "1", "b": "2", "c": "3"})
    table.failing = {"b"}
    table.gate, table.hold = asyncio.Event(), ["b"]
    reads, _ = grouped(table)
    callers = [asyncio.ensure_future(reads.get(key)) for key in ("a", "b", "c", "d")]
    await table.held.wait()  # "a" alone answered, "b" alone held: the database goes down
    table.outage = True
    table.gate.set()
    outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert outcomes[0] == "1"
    assert all(isinstance(outcome, psycopg.OperationalError) for outcome in outcomes[1:])
    assert table.statements == [["a", "b", "c", "d"], ["a"], ["b"]]


@bounded
async def test_a_statement_whose_connection_died_runs_once_more_on_another() -> None:
    table = Table({"a": "1", "b": "2"})
    reads, connections = grouped(table)
    table.deaths = 1
    assert await asyncio.gather(reads.get("a"), reads.get("b")) == ["1", "2"]
    assert table.statements == [["a", "b"], ["a", "b"]]
    assert [c.broken for c in connections.handed] == [True, False]
    # Two in a row: the outage is the callers'.
    table.deaths = 2
    outcomes = await asyncio.gather(reads.get("a"), reads.get("b"), return_exceptions=True)
    assert all(isinstance(outcome, psycopg.OperationalError) for outcome in outcomes)


@bounded
async def test_a_caller_waits_for_a_connection_no_longer_than_from_when_it_asked() -> None:
    table = Table({"a": "1", "b": "2"})
    reads, connections = grouped(table)
    table.gate = asyncio.Event()
    first = asyncio.ensure_future(reads.get("a"))
    await table.entered.wait()
    asked = asyncio.get_running_loop().time()
    later = asyncio.ensure_future(reads.get("b"))
    await asyncio.sleep(0.2)
    table.gate.set()
    assert await asyncio.gather(first, later) == ["1", "2"]
    first_wait, second_wait = connections.waits
    assert first_wait is not None and second_wait is not None
    assert first_wait <= READ_CONNECT_TIMEOUT_SECONDS
    # The second statement's callers asked 0.2 s or more before it took a connection.
    elapsed = asyncio.get_running_loop().time() - asked
    assert second_wait <= READ_CONNECT_TIMEOUT_SECONDS - 0.2
    assert second_wait >= READ_CONNECT_TIMEOUT_SECONDS - elapsed
