"""The faults, one after another, each followed by a bounded wait until work moves again.

While a followers process dies, the singletons it ran (relay, projectors, pattern detector)
are watched in Temporal: the failover time is from the SIGKILL until another followers
process started the singleton's activity again, and, for the relay, until its checkpoint
moved again. A killed worker's sagas go on on the other worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psycopg
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from projections.catalog import projection_names
from tests.chaos.deployment import Deployment
from workflows.followers import RELAY_WORKFLOW_ID, projector_workflow_id
from workflows.patterns import PATTERN_DETECTOR_WORKFLOW_ID

RECOVERY_WITHIN = 240.0
"""Bound of the wait, after a fault ends, for a transfer to finish and the relay to move."""
FAILOVER_WATCH = 60.0
"""How long a killed followers process's singletons are watched for their move."""
POLL = 0.25
TASK_QUEUE = "sagaline"
"""The workers' task queue (SAGALINE_TEMPORAL_TASK_QUEUE's default, which the suite keeps)."""
FOLLOWERS_TASK_QUEUE = "sagaline-followers"
"""The followers' task queue (derived from TASK_QUEUE by default, which the suite keeps)."""


@dataclass(frozen=True)
class FaultPlan:
    """What to break, and for how long."""

    kill_every_worker: bool = True
    """Each worker and each followers process once; otherwise the first worker and the
    followers process running the relay."""
    restart_after: float = 5.0
    broker_frozen_for: float = 20.0
    temporal_down_for: float = 15.0


@dataclass
class FaultWindow:
    """One fault: when it began and ended (seconds into the run), and how soon work resumed."""

    name: str
    began: float
    ended: float = 0.0
    recovered_after: float | None = None
    """Seconds from the fault's end until a transfer finished and the relay moved."""


@dataclass
class Failover:
    """One killed followers process's singletons and how long each took to run elsewhere."""

    process: str
    resumed_after: dict[str, float | None] = field(default_factory=dict)
    relay_moved_after: float | None = None


def singleton_ids() -> list[str]:
    """The workflow ids of every singleton follower."""
    return [
        RELAY_WORKFLOW_ID,
        PATTERN_DETECTOR_WORKFLOW_ID,
        *(projector_workflow_id(name) for name in projection_names()),
    ]


async def relay_checkpoint(database_url: str) -> int | None:
    """The relay's checkpoint, None while the database does not answer."""
    try:
        async with await psycopg.AsyncConnection.connect(database_url, connect_timeout=3) as conn:
            row = await (
                await conn.execute("SELECT position FROM checkpoints WHERE name = 'relay'")
            ).fetchone()
    except psycopg.Error:
        return None
    return None if row is None else int(row[0])


class FaultSchedule:
    """Runs the plan against a deployment while the workload runs."""

    def __init__(
        self,
        deployment: Deployment,
        plan: FaultPlan,
        finished_transfers: Callable[[], int],
        started: float,
    ) -> None:
        self.deployment = deployment
        self.plan = plan
        self.finished_transfers = finished_transfers
        self.started = started
        self.windows: list[FaultWindow] = []
        self.failovers: list[Failover] = []

    def _now(self) -> float:
        return time.monotonic() - self.started

    async def run(self) -> None:
        """Every fault in order; each waits for recovery before the next begins."""
        d = self.deployment
        plan = self.plan
        workers = range(len(d.workers)) if plan.kill_every_worker else [0]
        for n in workers:
            await self._fault(
                f"SIGKILL worker-{n + 1}, restarted after {plan.restart_after:g}s",
                functools.partial(self._kill_worker, n),
            )
        followers = (
            range(len(d.followers)) if plan.kill_every_worker else [await self._relay_followers()]
        )
        for n in followers:
            await self._fault(
                f"SIGKILL followers-{n + 1}, restarted after {plan.restart_after:g}s",
                functools.partial(self._kill_followers, n),
            )
        await self._fault(f"SIGKILL api-1, restarted after {plan.restart_after:g}s", self._kill_api)
        await self._fault(f"broker frozen (SIGSTOP) for {plan.broker_frozen_for:g}s", self._freeze)
        await self._fault("broker SIGKILLed and restarted empty", self._restart_broker)
        await self._fault("pg_ctl stop -m immediate, then started", d.restart_postgres_immediately)
        await self._fault(f"Temporal stopped for {plan.temporal_down_for:g}s", self._stop_temporal)

    async def _fault(self, name: str, act: Callable[[], Awaitable[None]]) -> None:
        window = FaultWindow(name, self._now())
        self.windows.append(window)
        finished_before = self.finished_transfers()
        await act()
        window.ended = self._now()
        window.recovered_after = await self._recovery(finished_before)

    async def _recovery(self, finished_before: int) -> float | None:
        """Seconds until a transfer finished after the fault and the relay moved, or None."""
        began = time.monotonic()
        relay_before = await relay_checkpoint(self.deployment.database_url)
        deadline = began + RECOVERY_WITHIN
        transfers_moved = relay_moved = False
        while time.monotonic() < deadline:
            transfers_moved = transfers_moved or self.finished_transfers() > finished_before
            if not relay_moved:
                now = await relay_checkpoint(self.deployment.database_url)
                relay_moved = now is not None and (relay_before is None or now > relay_before)
            if transfers_moved and relay_moved:
                return time.monotonic() - began
            await asyncio.sleep(POLL)
        return None

    async def _kill_worker(self, n: int) -> None:
        d = self.deployment
        worker = d.workers[n]
        client = await Client.connect(d.temporal.address)
        await d.kill(worker)
        await asyncio.sleep(self.plan.restart_after)
        await d.restart(worker)
        # The next fault may kill the other worker: this one must be polling by then, or
        # the sagas would have no live worker to go on on.
        await _until_polling(client, worker.pid, TASK_QUEUE)

    async def _kill_followers(self, n: int) -> None:
        d = self.deployment
        followers = d.followers[n]
        client = await Client.connect(d.temporal.address)
        held = await _held_by(client, followers.pid)
        failover = Failover(f"followers-{n + 1}")
        self.failovers.append(failover)
        relay_before = await relay_checkpoint(d.database_url)
        killed_pid = followers.pid
        killed_at = time.time()
        await d.kill(followers)
        watch = asyncio.create_task(
            _watch_failover(
                client, d.database_url, held, killed_pid, killed_at, relay_before, failover
            )
        )
        await asyncio.sleep(self.plan.restart_after)
        await d.restart(followers)
        await watch
        # The next fault may kill the other followers process: this one must be polling by
        # then, or the singletons would have nowhere to move to.
        await _until_polling(client, followers.pid, FOLLOWERS_TASK_QUEUE)

    async def _relay_followers(self) -> int:
        """The followers process running the relay now (the first if none is seen within a
        minute)."""
        d = self.deployment
        client = await Client.connect(d.temporal.address)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            identity = await _runner(client, RELAY_WORKFLOW_ID)
            for n, followers in enumerate(d.followers):
                if identity is not None and identity.startswith(f"{followers.pid}@"):
                    return n
            await asyncio.sleep(POLL)
        return 0

    async def _kill_api(self) -> None:
        d = self.deployment
        await d.kill(d.apis[0])
        await asyncio.sleep(self.plan.restart_after)
        await d.start_api(0)

    async def _freeze(self) -> None:
        self.deployment.freeze_broker()
        try:
            await asyncio.sleep(self.plan.broker_frozen_for)
        finally:
            self.deployment.thaw_broker()

    async def _restart_broker(self) -> None:
        await self.deployment.kill_broker()
        await self.deployment.start_broker()

    async def _stop_temporal(self) -> None:
        await self.deployment.stop_temporal()
        await asyncio.sleep(self.plan.temporal_down_for)
        await self.deployment.start_temporal()


async def _until_polling(
    client: Client, pid: int, task_queue: str, within: float = RECOVERY_WITHIN
) -> None:
    """Wait until the worker with this pid polls the task queue for activities."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    )
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            answer = await client.workflow_service.describe_task_queue(request)
            if any(poller.identity.startswith(f"{pid}@") for poller in answer.pollers):
                return
        await asyncio.sleep(POLL)
    raise RuntimeError(f"the restarted worker (pid {pid}) did not poll within {within:.0f}s")


async def _runner(client: Client, workflow_id: str) -> str | None:
    """The identity of the worker that last started the singleton's pending activity."""
    with contextlib.suppress(Exception):
        description = await client.get_workflow_handle(workflow_id).describe()
        for pending in description.raw_description.pending_activities:
            return str(pending.last_worker_identity)
    return None


async def _held_by(client: Client, pid: int) -> list[str]:
    """The singletons whose activity runs on the followers process with this pid."""
    held = []
    for workflow_id in singleton_ids():
        identity = await _runner(client, workflow_id)
        if identity is not None and identity.startswith(f"{pid}@"):
            held.append(workflow_id)
    return held


async def _watch_failover(
    client: Client,
    database_url: str,
    held: list[str],
    killed_pid: int,
    killed_at: float,
    relay_before: int | None,
    failover: Failover,
) -> None:
    """Fill `failover` with each singleton's time to start on another worker (None: not seen)."""
    waiting = set(held)
    failover.resumed_after = dict.fromkeys(held)
    watch_relay = RELAY_WORKFLOW_ID in held and relay_before is not None
    deadline = time.monotonic() + FAILOVER_WATCH
    while (waiting or watch_relay) and time.monotonic() < deadline:
        for workflow_id in list(waiting):
            resumed = await _resumed_at(client, workflow_id, killed_pid)
            if resumed is not None and resumed > killed_at:
                failover.resumed_after[workflow_id] = resumed - killed_at
                waiting.discard(workflow_id)
        if watch_relay:
            position = await relay_checkpoint(database_url)
            if position is not None and relay_before is not None and position > relay_before:
                failover.relay_moved_after = time.time() - killed_at
                watch_relay = False
        await asyncio.sleep(POLL)


async def _resumed_at(client: Client, workflow_id: str, killed_pid: int) -> float | None:
    """When the singleton's activity last started in a process other than the killed one."""
    with contextlib.suppress(Exception):
        description = await client.get_workflow_handle(workflow_id).describe()
        for pending in description.raw_description.pending_activities:
            identity = str(pending.last_worker_identity)
            if identity and not identity.startswith(f"{killed_pid}@"):
                started = pending.last_started_time
                return started.seconds + started.nanos / 1e9
    return None
