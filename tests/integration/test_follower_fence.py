"""At most one instance of a follower works at a time, whatever Temporal runs: the fence.

Temporal may run two attempts of a follower's activity at once (a new one after a heartbeat
timeout while the old one still runs); these run two instances side by side, as activities,
against the session's real Postgres and broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import cast

import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.following import FOLLOWER_HELD_ELSEWHERE, FollowInput, fenced, heartbeating
from activities.patterns import PatternActivities, PatternDetector
from activities.projections import ProjectInput, ProjectionActivities
from activities.relay import RelayActivities
from adapters import checkpoints
from adapters.consumer import EventConsumer
from adapters.database import libpq_url
from adapters.event_store import PostgresEventStore
from adapters.follower_fence import (
    UNWATCHED,
    FenceLost,
    FenceTimings,
    FollowerFence,
    fence_application_name,
)
from adapters.kafka import KafkaEventPublisher
from domain.event_store import NO_STREAM, NewEvent, RecordedEvent, StreamAppend
from domain.users import LockUser
from projections.projector import Projector
from tests.kafka_support import published_ids
from tests.proxy import CuttableProxy
from tests.waiting import eventually

RUN_SECONDS = 2.0
WITHIN = 30.0
HOLDER = """
import asyncio, sys
from adapters.follower_fence import FenceTimings, FollowerFence

async def hold() -> None:
    timings = FenceTimings(float(sys.argv[3]), check_every=0.1, check_timeout=0.5, margin=0.1)
    async with FollowerFence(sys.argv[1], sys.argv[2], timings) as fence:
        assert await fence.try_hold()
        print("held", flush=True)
        await asyncio.Event().wait()

asyncio.run(hold())
"""


async def start_at_head(engine: AsyncEngine, store: PostgresEventStore, checkpoint: str) -> None:
    """A new checkpoint at the store's head, so a follower of it reads only what comes next."""
    head = await store.head_position()
    async with engine.begin() as conn:
        await checkpoints.load(conn, checkpoint)
        await checkpoints.advance(conn, checkpoint, 0, head)


async def append_events(store: PostgresEventStore, event_type: str, count: int) -> list[str]:
    ids = []
    for _ in range(count // 50):
        events = [NewEvent(uuid.uuid4(), event_type, {"n": n}) for n in range(50)]
        await store.append(StreamAppend(f"fence-{uuid.uuid4()}", events, NO_STREAM))
        ids += [str(e.event_id) for e in events]
    return ids


async def test_two_relay_activities_at_once_publish_each_event_once(
    engine: AsyncEngine, store: PostgresEventStore, kafka_bootstrap: str, database_url: str
) -> None:
    topic = f"fence-{uuid.uuid4()}"
    checkpoint = f"relay-fence-{uuid.uuid4()}"
    await start_at_head(engine, store, checkpoint)
    appended = await append_events(store, "FenceCounted", 300)

    def publisher() -> KafkaEventPublisher:
        return KafkaEventPublisher(kafka_bootstrap, topic, partitions=2)

    relays = [
        RelayActivities(
            engine, store, database_url, publisher, batch_size=50, checkpoint=checkpoint
        )
        for _ in range(2)
    ]
    beats: list[list[object]] = [[], []]
    environments = [ActivityEnvironment(), ActivityEnvironment()]
    for environment, beat in zip(environments, beats, strict=True):
        environment.on_heartbeat = lambda *details, beat=beat: beat.append(details)

    moved = await asyncio.gather(
        *(
            environment.run(relay.relay_events, FollowInput(RUN_SECONDS))
            for environment, relay in zip(environments, relays, strict=True)
        )
    )

    published = await published_ids(kafka_bootstrap, topic, WITHIN)
    assert {published[event_id] for event_id in appended} == {1}
    assert sorted(moved)[0] == 0, "the instance that waited found nothing left to publish"
    assert all(beats), "both instances heartbeated, the waiting one too"


class OverlapProjection:
    """Counts how many batches it applies at the same time, and every event it applied."""

    tables: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ("FenceProjected",)

    def __init__(self, name: str) -> None:
        self.name = name
        self.inside = 0
        self.most_inside = 0
        self.applied: Counter[str] = Counter()

    async def apply(self, conn: AsyncConnection, event: RecordedEvent) -> None:
        await self.apply_batch(conn, [event])

    async def apply_batch(self, conn: AsyncConnection, events: Sequence[RecordedEvent]) -> None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            await asyncio.sleep(0.05)
            self.applied.update(str(e.event_id) for e in events)
        finally:
            self.inside -= 1

    def writing_to(self, tables: dict[str, str]) -> OverlapProjection:
        return self


async def test_two_projector_activities_at_once_never_apply_batches_side_by_side(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    projection = OverlapProjection(f"fence-{uuid.uuid4()}")
    checkpoint = f"projection-fence-{uuid.uuid4()}"
    await start_at_head(engine, store, checkpoint)
    appended = await append_events(store, "FenceProjected", 200)
    instances = [
        ProjectionActivities(
            {projection.name: Projector(engine, store, projection, 20, checkpoint=checkpoint)},
            database_url,
            engine,
            store,
        )
        for _ in range(2)
    ]

    await asyncio.gather(
        *(
            ActivityEnvironment().run(
                instance.project_events, ProjectInput(projection.name, RUN_SECONDS)
            )
            for instance in instances
        )
    )

    assert projection.most_inside == 1
    assert {projection.applied[event_id] for event_id in appended} == {1}


class GroupMember:
    """Stands for the detector's consumer: counts how many are in the group at once."""

    def __init__(self, group: Counter[str]) -> None:
        self._group = group

    async def start(self) -> None:
        self._group["members"] += 1
        self._group["most"] = max(self._group["most"], self._group["members"])

    async def run(self, seconds: float, progress: Callable[[int], None] | None = None) -> int:
        await asyncio.sleep(seconds)
        return 0

    async def stop(self) -> None:
        self._group["members"] -= 1


async def test_two_pattern_detector_activities_at_once_never_both_join_the_group(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    group: Counter[str] = Counter()
    fence = f"pattern-detector-{uuid.uuid4()}"

    async def no_lock(command: LockUser) -> None:
        raise AssertionError("no event, no match")

    detectors = [
        PatternActivities(
            engine,
            PatternDetector(store, (), no_lock),
            lambda _: cast(EventConsumer, GroupMember(group)),
            database_url,
            fence,
        )
        for _ in range(2)
    ]

    await asyncio.gather(
        *(
            ActivityEnvironment().run(detector.detect_patterns, FollowInput(RUN_SECONDS / 2))
            for detector in detectors
        )
    )

    assert group["most"] == 1
    assert group["members"] == 0


@pytest.fixture
async def holder(database_url: str) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """Another process holding a fence (with a 1 s idle timeout), and the fence's name."""
    name = f"fence-test-{uuid.uuid4()}"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, database_url, name, "1.0", stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    async with asyncio.timeout(WITHIN):
        assert await process.stdout.readline() == b"held\n"
    yield name, process
    if process.returncode is None:
        process.kill()
        process.send_signal(signal.SIGCONT)
        await process.wait()


async def test_a_fence_holder_that_dies_releases_the_fence_to_another(
    database_url: str, holder: tuple[str, asyncio.subprocess.Process]
) -> None:
    name, process = holder
    async with FollowerFence(database_url, name) as fence:
        assert not await fence.try_hold()

        process.kill()

        await eventually(fence.try_hold, WITHIN, "the fence of a killed holder was free")


async def test_a_frozen_fence_holder_loses_the_fence_after_its_idle_timeout(
    database_url: str, holder: tuple[str, asyncio.subprocess.Process]
) -> None:
    name, process = holder
    async with FollowerFence(database_url, name) as fence:
        assert not await fence.try_hold()

        process.send_signal(signal.SIGSTOP)

        await eventually(fence.try_hold, WITHIN, "the fence of a frozen holder was free")


async def end_fence_connection(database_url: str, name: str) -> None:
    """End the connection holding follower `name`'s fence from the server's side, once the
    fence is held."""
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True
    ) as admin:

        async def ended() -> bool:
            cursor = await admin.execute(
                "SELECT count(pg_terminate_backend(a.pid)) FROM pg_stat_activity a"
                " WHERE a.application_name = %s AND EXISTS ("
                " SELECT FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory')",
                (fence_application_name(name),),
            )
            row = await cursor.fetchone()
            return bool(row and row[0])

        await eventually(ended, WITHIN, "the fence's connection was there to end")


async def test_work_under_a_fence_whose_connection_ends_is_cancelled(database_url: str) -> None:
    name = f"fence-test-{uuid.uuid4()}"
    stopped = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    working = asyncio.create_task(fenced(database_url, name, work))
    await end_fence_connection(database_url, name)

    with pytest.raises(FenceLost):
        async with asyncio.timeout(WITHIN):
            await working
    assert stopped.is_set()


async def test_a_lost_fence_fails_even_when_its_work_swallows_the_cancel_and_returns(
    database_url: str,
) -> None:
    name = f"fence-test-{uuid.uuid4()}"
    cancelled = asyncio.Event()

    async def work() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
        return "worked"

    working = asyncio.create_task(fenced(database_url, name, work))
    await end_fence_connection(database_url, name)

    with pytest.raises(FenceLost):
        async with asyncio.timeout(WITHIN):
            await working
    assert cancelled.is_set()


async def test_a_lost_fence_stops_heartbeating_without_waiting_for_work_stuck_on_an_outage(
    database_url: str,
) -> None:
    # Work stuck on a network split: it takes no notice of the cancel and goes on waiting
    # far longer than the fence leaves it, while another instance may hold the fence.
    timings = FenceTimings(idle_timeout=2.0, check_every=0.25, check_timeout=0.5, margin=0.5)
    name = f"fence-test-{uuid.uuid4()}"
    holding, outage_over, ended = asyncio.Event(), asyncio.Event(), asyncio.Event()
    beats: list[object] = []

    async def work() -> None:
        holding.set()
        try:
            while not outage_over.is_set():
                with contextlib.suppress(asyncio.CancelledError):
                    await outage_over.wait()
        finally:
            ended.set()

    async def follower() -> None:
        async with heartbeating(lambda: len(beats)):
            await fenced(database_url, name, work, timings=timings)

    environment = ActivityEnvironment()
    environment.on_heartbeat = lambda *details: beats.append(details)
    running = asyncio.create_task(environment.run(follower))
    async with asyncio.timeout(WITHIN):
        await holding.wait()
    try:
        await end_fence_connection(database_url, name)

        # Waited on, not cancelled at the bound: a cancel would wait on the stuck work too.
        await asyncio.wait({running}, timeout=WITHIN)
        assert running.done(), "the activity waited for its stuck work to end"
        assert isinstance(running.exception(), FenceLost)
        assert not ended.is_set()
        assert beats, "the activity heartbeated while it held the fence"
    finally:
        outage_over.set()
        async with asyncio.timeout(WITHIN):
            await ended.wait()


@pytest.fixture
async def database_behind_proxy(database_url: str) -> AsyncIterator[tuple[CuttableProxy, str]]:
    """A proxy to the session's Postgres, and the database URL through it."""
    url = make_url(database_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    await proxy.stop()


def held_until_cancelled(holding: asyncio.Event) -> Callable[[], Awaitable[None]]:
    """Work that tells when it runs (so holds its fence), and runs until cancelled."""

    async def work() -> None:
        holding.set()
        await asyncio.Event().wait()

    return work


async def test_a_holder_cut_off_from_postgres_stops_before_another_can_take_its_fence(
    database_url: str, database_behind_proxy: tuple[CuttableProxy, str]
) -> None:
    # The production timings: the holder must notice within a check's wait and timeout,
    # however its driver would go about cancelling the query nobody answers.
    proxy, proxied_url = database_behind_proxy
    timings = FenceTimings()
    name = f"fence-test-{uuid.uuid4()}"
    holding = asyncio.Event()
    loop = asyncio.get_running_loop()
    working = asyncio.create_task(fenced(proxied_url, name, held_until_cancelled(holding)))
    async with asyncio.timeout(WITHIN):
        await holding.wait()
    async with FollowerFence(database_url, name) as other:
        assert not await other.try_hold()

        proxy.freeze()
        frozen_at = loop.time()
        with pytest.raises(FenceLost):
            async with asyncio.timeout(timings.check_every + timings.check_timeout + 1.0):
                await working
        lost_after = loop.time() - frozen_at

        assert not await other.try_hold(), "the holder stopped while Postgres kept its lock"
        await eventually(other.try_hold, WITHIN, "the cut-off holder's lock was released")
    assert lost_after < timings.idle_timeout - timings.margin


async def test_a_fence_cancelled_again_while_closing_still_closes_its_connection(
    database_behind_proxy: tuple[CuttableProxy, str],
) -> None:
    proxy, proxied_url = database_behind_proxy
    fence = FollowerFence(proxied_url, f"fence-test-{uuid.uuid4()}", UNWATCHED)
    held, frozen = asyncio.Event(), asyncio.Event()

    async def hold_and_check() -> None:
        async with fence:
            assert await fence.try_hold()
            held.set()
            await frozen.wait()
            await fence.check()

    holding = asyncio.create_task(hold_and_check())
    async with asyncio.timeout(WITHIN):
        await held.wait()
    connection = fence._conn
    assert connection is not None
    proxy.freeze()
    frozen.set()
    await asyncio.sleep(0)  # the task sends its check, which goes unanswered

    # Cancelled while checking, the fence abandons the check and closes; cancelled again
    # while it waits for the abandoned check to end.
    holding.cancel()
    await asyncio.sleep(0)
    holding.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(WITHIN):
            await holding
    assert connection.closed


async def test_a_healthy_holder_keeps_its_fence_past_the_idle_timeout(database_url: str) -> None:
    timings = FenceTimings(idle_timeout=2.0, check_every=0.25, check_timeout=0.5, margin=0.5)
    name = f"fence-test-{uuid.uuid4()}"
    holding, done = asyncio.Event(), asyncio.Event()

    async def work() -> str:
        holding.set()
        await done.wait()
        return "worked"

    loop = asyncio.get_running_loop()
    working = asyncio.create_task(fenced(database_url, name, work, timings=timings))
    async with asyncio.timeout(WITHIN):
        await holding.wait()
    async with FollowerFence(database_url, name) as other:
        # The subject is time passing: the holder's session outlives its idle timeout
        # twice over, and the lock stays its own meanwhile.
        keep_until = loop.time() + 2.5 * timings.idle_timeout
        tries = 0
        while loop.time() < keep_until:
            assert not await other.try_hold(), "another instance took a healthy holder's fence"
            assert not working.done(), "the healthy holder lost its fence"
            tries += 1
            await asyncio.sleep(0.1)
        done.set()
        async with asyncio.timeout(WITHIN):
            assert await working == "worked"
        await eventually(other.try_hold, WITHIN, "the fence was released when its holder was done")
    assert tries > 10


async def test_an_instance_that_cannot_get_the_fence_fails_after_its_wait(
    database_url: str,
) -> None:
    name = f"fence-test-{uuid.uuid4()}"
    wait_seconds = 0.75
    ran = asyncio.Event()

    async def work() -> None:
        ran.set()

    loop = asyncio.get_running_loop()
    async with FollowerFence(database_url, name) as holder:
        assert await holder.try_hold()
        started = loop.time()
        with pytest.raises(ApplicationError) as failed:
            async with asyncio.timeout(WITHIN):
                await fenced(database_url, name, work, wait_seconds=wait_seconds)
        waited = loop.time() - started

    assert failed.value.type == FOLLOWER_HELD_ELSEWHERE
    assert not failed.value.non_retryable
    assert not ran.is_set()
    assert wait_seconds <= waited < wait_seconds + WITHIN / 2
