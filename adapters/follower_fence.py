"""At most one instance of each follower at work: a session-level advisory lock in Postgres.

Temporal runs an activity at least once: after a heartbeat timeout it starts another attempt
while the first may still run on a worker that lost touch, and a follower moved between task
queues may for a moment run on both. So each follower holds a lock named after it, on a
connection of its own, for as long as it works. Postgres releases the lock when that
connection ends: when the holder closes it, when its process dies, and when the holder stops
using it for longer than the session's idle timeout (a frozen process, a network split),
which the holder's regular checks (`FollowerFence.watch`) keep from happening while it lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NoReturn

import psycopg

from adapters.database import libpq_url

FENCE_LOCKS = 0x5A6C_F0CE
"""The first key of every fence's two-key advisory lock: a key space of the fences' own (the
one-key advisory locks of `adapters.pattern_windows` never meet it)."""
IDLE_TIMEOUT_SECONDS = 10.0
"""How long Postgres keeps the lock of a holder that stopped checking it."""
CHECK_EVERY_SECONDS = 1.0
"""How long the holder waits after one answered check before the next."""
CHECK_TIMEOUT_SECONDS = 5.0
"""A check not answered within this counts as a lost fence."""
MARGIN_SECONDS = 2.0
"""What the holder's checks leave of the idle timeout: for the answer's way back, a busy
event loop's late timers, and the holder's work unwinding once the fence is lost."""
CONNECT_TIMEOUT_SECONDS = 5
"""A fence's connection that does not open within this fails, and its activity retries."""
ABANDONED_WAIT_SECONDS = 1.0
"""How long closing a fence waits for a question cut off by its socket's shutdown to end (it
ends on the loop's next turn; this only bounds a surprise)."""

_TRY_HOLD = "SELECT pg_try_advisory_lock(%s, hashtext(%s))"


def fence_application_name(name: str) -> str:
    """How the connection holding follower `name`'s fence shows in pg_stat_activity."""
    return f"sagaline fence {name}"[:63]


class FenceLost(RuntimeError):
    """The fence's connection ended or stopped answering: another instance may hold it now."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the fence of follower {name} was lost")


@dataclass(frozen=True)
class FenceTimings:
    """How long Postgres keeps a silent holder's lock, and how the holder checks it.

    The holder learns its connection is gone at most `check_every + check_timeout` after
    its last answered check, while Postgres hands the lock on no sooner than `idle_timeout`
    after it: so `check_every + check_timeout + margin < idle_timeout`, or a holder cut off
    could still work while another instance holds the lock. An `idle_timeout` of 0 means
    none: only the connection's end releases the lock (for a holder that does not watch).
    """

    idle_timeout: float = IDLE_TIMEOUT_SECONDS
    check_every: float = CHECK_EVERY_SECONDS
    check_timeout: float = CHECK_TIMEOUT_SECONDS
    margin: float = MARGIN_SECONDS

    def __post_init__(self) -> None:
        if min(self.idle_timeout, self.check_every, self.check_timeout, self.margin) < 0:
            raise ValueError(f"fence timings must not be negative: {self}")
        noticed = self.check_every + self.check_timeout + self.margin
        if self.idle_timeout and noticed >= self.idle_timeout:
            raise ValueError(
                f"a fence's checks every {self.check_every} s, each up to"
                f" {self.check_timeout} s, with a margin of {self.margin} s, notice a lost"
                f" connection too late for its idle timeout of {self.idle_timeout} s"
            )


UNWATCHED = FenceTimings(idle_timeout=0)
"""For a holder that nothing checks while it works: its lock lasts as long as its
connection, which ends with its process."""


class FollowerFence:
    """The advisory lock of one follower name, on a connection opened for it.

    Opening the connection is bounded by CONNECT_TIMEOUT_SECONDS, and every question to it
    (setting its idle timeout, taking the lock, a check) by `check_timeout`: one not answered
    by then is abandoned, not waited for. The connection's
    socket is shut down at once, so the question fails on the loop's next turn instead of
    going through the driver's cancellation (which sends a cancel request and then waits for
    the cancelled query, seconds each on a connection cut off), and FenceLost is raised.
    """

    def __init__(self, database_url: str, name: str, timings: FenceTimings | None = None) -> None:
        self._url = libpq_url(database_url)
        self.name = name
        self.timings = FenceTimings() if timings is None else timings
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._asking: asyncio.Future[tuple[Any, ...] | None] | None = None
        self._lost = False

    async def __aenter__(self) -> FollowerFence:
        conn = await psycopg.AsyncConnection.connect(
            self._url,
            autocommit=True,
            application_name=fence_application_name(self.name),
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
        )
        self._conn = conn
        self._lost = False
        try:
            await self._ask(
                "SELECT set_config('idle_session_timeout', %s, false)",
                (str(round(self.timings.idle_timeout * 1000)),),
            )
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def try_hold(self) -> bool:
        """Take the lock if no other session holds it; whether this one holds it now."""
        row = await self._ask(_TRY_HOLD, (FENCE_LOCKS, self.name))
        return bool(row and row[0])

    async def check(self) -> None:
        """Return if the connection holding the lock still answers; else FenceLost."""
        await self._ask("SELECT 1", ())

    async def watch(self) -> NoReturn:
        """Check the connection every `check_every` for as long as the holder works; raise
        FenceLost as soon as a check fails or goes unanswered for `check_timeout`, which is
        before Postgres could hand the lock to another instance (see FenceTimings)."""
        if not self.timings.idle_timeout:
            raise RuntimeError(f"fence {self.name} has no idle timeout for checks to keep")
        while True:
            await asyncio.sleep(self.timings.check_every)
            await self.check()

    async def _ask(self, query: str, params: Sequence[object]) -> tuple[Any, ...] | None:
        conn = self._connection()
        if self._lost:
            raise FenceLost(self.name)
        asking = asyncio.ensure_future(_fetch_one(conn, query, params))
        self._asking = asking
        try:
            done, _ = await asyncio.wait({asking}, timeout=self.timings.check_timeout)
        except asyncio.CancelledError:
            # Whoever asked stopped waiting; the question must not outlive the fence.
            self._abandon()
            raise
        if not done:
            self._abandon()
            raise FenceLost(self.name) from TimeoutError(
                f"no answer within {self.timings.check_timeout} s"
            )
        try:
            return asking.result()
        except psycopg.Error as error:
            self._lost = True
            raise FenceLost(self.name) from error

    def _abandon(self) -> None:
        """Shut the connection's socket down without waiting for anything: a question in
        flight sees the connection end and fails, and Postgres, should it hear of it, ends
        the session (and the lock with it)."""
        self._lost = True
        conn = self._conn
        if conn is None or conn.closed:
            return
        with contextlib.suppress(OSError, psycopg.Error):
            _shut_down(conn.fileno())

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        asking, self._asking = self._asking, None
        if conn is None:
            return
        if asking is not None:
            # Retrieved: an abandoned question's error is expected.
            asking.add_done_callback(_retrieve)
        try:
            if asking is not None and not asking.done():
                self._abandon()
                await asyncio.wait({asking}, timeout=ABANDONED_WAIT_SECONDS)
        finally:
            # Also when cancelled while waiting: the connection, and the lock, end here.
            await conn.close()

    def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None:
            raise RuntimeError("FollowerFence is not entered")
        return self._conn


async def _fetch_one(
    conn: psycopg.AsyncConnection[Any], query: str, params: Sequence[object]
) -> tuple[Any, ...] | None:
    cursor = await conn.execute(query, params)
    row = await cursor.fetchone()
    return None if row is None else tuple(row)


def _shut_down(descriptor: int) -> None:
    """End the connection of socket `descriptor` both ways, leaving the descriptor open.

    Through a socket of its own on a duplicate: the shutdown ends the connection under
    psycopg's descriptor too, which stays open (so its number is never reused while the
    loop still watches it) until psycopg closes it."""
    duplicate = os.dup(descriptor)
    try:
        shutting = socket.socket(fileno=duplicate)
    except BaseException:
        os.close(duplicate)
        raise
    with shutting:
        shutting.shutdown(socket.SHUT_RDWR)


def _retrieve(question: asyncio.Future[Any]) -> None:
    if not question.cancelled():
        question.exception()
