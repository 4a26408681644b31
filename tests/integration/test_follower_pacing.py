"""A follower's pacing: a batch that read a page that was not full waits for the next
notification, a busy follower lets the commits of its window share one batch, and a commit
that finds it idle is acted on at once."""

from __future__ import annotations

import asyncio
import uuid

import psycopg

from activities.following import Pacing, run_batches
from adapters.database import libpq_url
from adapters.notifications import EventNotifications

WITHIN = 10.0
PAGE = 100


class Commits:
    """Commits notified on a channel of the test's own; a batch takes all that are pending."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.url = libpq_url(database_url)
        self.channel = f"pacing_{uuid.uuid4().hex[:12]}"
        self.pending = 0
        self.batches: list[tuple[float, int]] = []
        self.taken = asyncio.Event()
        self.batched = asyncio.Event()

    def moved(self, step: int) -> None:
        """What the loop reports of each batch: nothing to check here."""

    async def batches_at_least(self, count: int) -> None:
        while len(self.batches) < count:
            self.batched.clear()
            await asyncio.wait_for(self.batched.wait(), WITHIN)

    async def commit(self, times: int = 1) -> None:
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            for _ in range(times):
                self.pending += 1
                await conn.execute(f"NOTIFY {self.channel}")

    async def batch(self) -> int:
        step, self.pending = self.pending, 0
        self.batches.append((asyncio.get_running_loop().time(), step))
        self.batched.set()
        if step:
            self.taken.set()
        return step

    async def taken_all(self) -> float:
        """When the last pending commit was taken by a batch."""
        while self.pending:
            self.taken.clear()
            await asyncio.wait_for(self.taken.wait(), WITHIN)
        return next(at for at, step in reversed(self.batches) if step)


async def following(commits: Commits, pacing: Pacing) -> asyncio.Task[None]:
    notifications = EventNotifications(commits.database_url, commits.channel)
    await notifications.__aenter__()
    loop = asyncio.get_running_loop()

    async def run() -> None:
        try:
            await run_batches(commits.batch, notifications, loop.time() + 60, pacing, commits.moved)
        finally:
            await notifications.__aexit__(None, None, None)

    task = asyncio.create_task(run())
    await commits.batches_at_least(1)  # the first batch, finding nothing
    return task


async def stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_commits_within_the_window_share_one_batch(database_url: str) -> None:
    commits = Commits(database_url)
    window = 1.0
    task = await following(commits, Pacing(page_size=PAGE, coalesce_seconds=window))
    try:
        await commits.commit()
        first = await commits.taken_all()
        await commits.commit(5)
        second = await commits.taken_all()
    finally:
        await stopped(task)
    moves = [step for _, step in commits.batches if step]
    assert moves == [1, 5]
    assert second - first >= window * 0.9


async def test_a_lone_commit_is_acted_on_at_once(database_url: str) -> None:
    commits = Commits(database_url)
    window = 5.0
    task = await following(commits, Pacing(page_size=PAGE, coalesce_seconds=window))
    try:
        loop = asyncio.get_running_loop()
        sent = loop.time()
        await commits.commit()
        taken = await commits.taken_all()
    finally:
        await stopped(task)
    assert taken - sent < window / 2


async def test_a_page_that_was_not_full_waits_for_the_next_notification(
    database_url: str,
) -> None:
    commits = Commits(database_url)
    task = await following(commits, Pacing(page_size=PAGE))
    try:
        await commits.commit()
        await commits.taken_all()
        await asyncio.sleep(0.3)
        assert [step for _, step in commits.batches] == [0, 1]
        await commits.commit()
        await commits.taken_all()
        await asyncio.sleep(0.3)
    finally:
        await stopped(task)
    assert [step for _, step in commits.batches] == [0, 1, 1]


async def test_without_a_page_size_a_batch_that_moved_is_followed_by_another(
    database_url: str,
) -> None:
    commits = Commits(database_url)
    task = await following(commits, Pacing())
    try:
        await commits.commit()
        await commits.taken_all()
        await commits.batches_at_least(3)
    finally:
        await stopped(task)
    assert [step for _, step in commits.batches][:3] == [0, 1, 0]
