"""The followers process: the relay, the projectors and the pattern detector, on a task queue
of their own, so that their batches run beside the sagas rather than on their event loop."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from activities.following import Pacing
from activities.projections import ProjectionActivities
from activities.relay import RelayActivities
from adapters.event_store import PostgresEventStore
from adapters.kafka import KafkaEventPublisher
from projections.accounts import AccountsProjection
from projections.catalog import all_projections, projection_names
from projections.projector import Projector
from projections.rebuild import drop_abandoned_rebuilds
from projections.transfers import TransfersProjection
from projections.users import UsersProjection
from runtime.config import Settings
from runtime.patterns import pattern_activities
from runtime.serving import serve
from runtime.worker_metrics import FollowerMetrics
from workflows.followers import (
    HEARTBEAT,
    RELAY_WORKFLOW_ID,
    ProjectorWorkflow,
    RebuildProjectionWorkflow,
    RelayWorkflow,
    projector_workflow_id,
    rebuilt_projection,
)
from workflows.patterns import PATTERN_DETECTOR_WORKFLOW_ID, PatternDetectorWorkflow

log = logging.getLogger(__name__)

CONNECTIONS_PER_FOLLOWER = 2
"""Pooled connections a follower's activity holds at most at once: its batch's transaction
and the read of its next page ahead (a rebuild's replay, the detector's consumer the same)."""
REBUILDS_PROVIDED_FOR = 1
POOL_HEADROOM = 4
"""Pooled connections beyond those: the detector's sweep, another rebuild, an attempt of a
follower starting while the one before it still unwinds."""

ANSWERED_PROJECTIONS = frozenset(
    {TransfersProjection.name, AccountsProjection.name, UsersProjection.name}
)
"""The read models mutations answer from, once they have the command's events
(read-your-writes: `read_after` in api/*/mutations.py)."""

FOLLOWER_WORKFLOWS = [
    RelayWorkflow,
    ProjectorWorkflow,
    RebuildProjectionWorkflow,
    PatternDetectorWorkflow,
]

ENDED_WITH_ACTIVITY_UNKNOWN = frozenset(
    {
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.CANCELED,
        WorkflowExecutionStatus.TIMED_OUT,
    }
)
"""How a run can end while its activity still runs on some worker, until it hears of the end."""
MOVE_ATTEMPTS = 3
"""Rounds of moving followers that an older worker starts again on its queue meanwhile."""

FollowerStart = Callable[[Client, str], Awaitable[object]]


def pool_size() -> int:
    """Pooled database connections of a followers process (pool plus overflow).

    Enough for every singleton at once, as after a failover one process runs them all, and
    a rebuild, plus headroom. Besides these, each singleton it runs holds connections of its
    own: its fence, and (the relay and the projectors) its LISTEN connection.
    """
    followers = len(follower_starts(projection_names())) + REBUILDS_PROVIDED_FOR
    return CONNECTIONS_PER_FOLLOWER * followers + POOL_HEADROOM


async def run_followers(settings: Settings) -> None:
    """Run the followers' worker until cancelled, having started (or moved) the followers."""
    task_queue = settings.followers_task_queue()

    async def start(client: Client, engine: AsyncEngine) -> None:
        await start_followers(client, task_queue, projection_names(), handover(settings))
        await move_rebuilds(client, task_queue)
        await drop_abandoned_rebuilds(engine, all_projections())

    await serve(
        settings,
        "followers",
        task_queue=task_queue,
        pool_size=pool_size(),
        metrics=FollowerMetrics if settings.metrics else None,
        open_store=_open_store,
        create_worker=functools.partial(create_followers_worker, settings),
        log=log,
        on_start=start,
    )


def _open_store(engine: AsyncEngine, metrics: FollowerMetrics | None) -> PostgresEventStore:
    """The followers' event store; with `metrics`, their pool is measured."""
    if metrics is not None:
        metrics.watch_pool(engine)
    return PostgresEventStore(engine)


def create_followers_worker(
    settings: Settings,
    client: Client,
    engine: AsyncEngine,
    store: PostgresEventStore,
    metrics: FollowerMetrics | None = None,
) -> Worker:
    """A worker for the followers' workflows and activities on the followers' task queue.

    The caller owns `engine` and `store`. With `metrics`, the pattern detector's consumer
    reports into them.
    """
    database_url = settings.require_database_url()
    kafka_bootstrap = settings.require_kafka_bootstrap()
    # Unless the read models are read on a replica (`SAGALINE_READ_DATABASE_URL`, given to
    # this process as to the API; a replica receives WAL only once it is flushed), a
    # projector's commit does not wait for its flush.
    flush_commits = settings.reads_replica()
    projectors = {
        p.name: Projector(engine, store, p, flush_commits=flush_commits) for p in all_projections()
    }

    def publisher() -> KafkaEventPublisher:
        return KafkaEventPublisher(
            kafka_bootstrap,
            settings.kafka_topic,
            settings.kafka_partitions,
            idempotent=settings.kafka_idempotent_producer,
            request_timeout_ms=settings.kafka_request_timeout_ms,
        )

    relay = RelayActivities(
        engine, store, database_url, publisher, coalesce_seconds=settings.relay_coalesce_ms / 1000
    )
    projection_activities = ProjectionActivities(
        projectors, database_url, engine, store, projector_pacing(settings, projectors)
    )
    patterns = pattern_activities(
        settings, client, engine, store, metrics.consumers if metrics else None
    )
    return Worker(
        client,
        task_queue=settings.followers_task_queue(),
        workflows=FOLLOWER_WORKFLOWS,
        activities=[
            relay.relay_events,
            projection_activities.project_events,
            projection_activities.rebuild_projection,
            patterns.detect_patterns,
        ],
        max_concurrent_activities=pool_size(),
        graceful_shutdown_timeout=timedelta(seconds=5),
    )


def projector_pacing(settings: Settings, projectors: Mapping[str, Projector]) -> dict[str, Pacing]:
    """How each projector spaces its batches: those of the read models mutations answer
    from by their own window (none by default), so no answer waits longer; the others by
    the projectors' one."""
    return {
        name: Pacing(
            page_size=projector.batch_size,
            coalesce_seconds=(
                settings.answered_projector_coalesce_ms
                if name in ANSWERED_PROJECTIONS
                else settings.projector_coalesce_ms
            )
            / 1000,
        )
        for name, projector in projectors.items()
    }


def handover(settings: Settings) -> timedelta:
    """How long an activity of a follower's run ended on another task queue may go on there.

    Such an activity runs on a worker from before the followers had a queue of their own,
    which takes no fence (`activities.following.fenced`), so only time keeps the two apart: it
    hears of the end from the answer to its next heartbeat, which the SDK sends at most every
    0.8 heartbeat timeouts, then gets up to a heartbeat timeout for that answer, and unwinds;
    the relay's publish in flight ends within the broker's request timeout.
    """
    return HEARTBEAT * 0.8 + HEARTBEAT + timedelta(milliseconds=settings.kafka_request_timeout_ms)


async def start_followers(
    client: Client, task_queue: str, projections: list[str], handover: timedelta
) -> None:
    """Run the relay, pattern detector and projector singletons on `task_queue`.

    Each is started unless it runs already. One that runs on another task queue (the queue
    all of them shared with the sagas before they had their own) is ended and started on
    this one after `handover` (see `handover()`): it goes on from its checkpoint in
    Postgres, so nothing is lost or done twice. Whichever process ended that run, each one
    that finds it so ended waits out the handover before starting the follower here.
    """
    starts = follower_starts(projections)
    for _ in range(MOVE_ATTEMPTS):
        ended = [
            workflow_id
            for workflow_id in starts
            if await _end_if_elsewhere(client, workflow_id, task_queue)
        ]
        if ended:
            log.info("moving followers to task queue %s: %s", task_queue, ", ".join(ended))
            await asyncio.sleep(handover.total_seconds())
        for start in starts.values():
            await start(client, task_queue)
        if not ended:
            return
    elsewhere = [
        workflow_id
        for workflow_id in starts
        if await _running_elsewhere(client, workflow_id, task_queue) is not None
    ]
    if elsewhere:
        log.warning(
            "followers were started on another task queue again while being moved: %s",
            ", ".join(elsewhere),
        )


async def move_rebuilds(client: Client, task_queue: str) -> list[str]:
    """End every projection rebuild running on another task queue and start it again here,
    under the same workflow id; returns those ids.

    A rebuild started on the queue the followers shared with the sagas would wait there for
    ever after the upgrade, no worker on it running rebuilds any more. Started again it
    replays from position 0 into fresh tables; should the ended one's activity still run on
    an older worker, both swap in turn, each a whole replay, and the ended one's tables go
    with it or with `drop_abandoned_rebuilds`. One that completed after it was listed is
    left completed (see `start_rebuild_again`).
    """
    moved = []
    query = f"WorkflowType = '{RebuildProjectionWorkflow.__name__}' AND ExecutionStatus = 'Running'"
    async for execution in client.list_workflows(query):
        projection = rebuilt_projection(execution.id)
        if execution.task_queue == task_queue or projection is None:
            continue
        run = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        try:
            await run.terminate(
                reason=f"moved from task queue {execution.task_queue} to {task_queue}"
            )
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
        if await start_rebuild_again(client, execution.id, projection, task_queue):
            moved.append(execution.id)
    if moved:
        log.info("rebuilds started again on task queue %s: %s", task_queue, ", ".join(moved))
    return moved


async def start_rebuild_again(
    client: Client, workflow_id: str, projection: str, task_queue: str
) -> bool:
    """Start rebuild `workflow_id` of `projection` on `task_queue` unless its latest run
    completed; whether it runs now (a run another process started here counts).

    Its latest run is usually the one `move_rebuilds` just terminated. But a terminate that
    found it ended already (NOT_FOUND) may have met a run that completed on an older worker
    in the meantime, or another followers process's new run that completed since: that
    rebuild is done, and starting it again would replay every event once more for nothing.
    So the id may be reused only after a run that did not complete (failed, terminated,
    cancelled, timed out); a run that still runs (another process's) is joined.
    """
    try:
        await client.start_workflow(
            RebuildProjectionWorkflow.run,
            projection,
            id=workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Rebuild projection {projection}",
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


def follower_starts(projections: list[str]) -> Mapping[str, FollowerStart]:
    """Every singleton follower's workflow id, with how to start it on a task queue."""
    return {
        RELAY_WORKFLOW_ID: _start_relay,
        PATTERN_DETECTOR_WORKFLOW_ID: _start_pattern_detector,
        **{
            projector_workflow_id(name): functools.partial(_start_projector, name)
            for name in projections
        },
    }


async def _end_if_elsewhere(client: Client, workflow_id: str, task_queue: str) -> bool:
    """End the follower's run if it runs on another task queue; whether it did, or found
    its latest run so ended there already (by another process moving the followers)."""
    described = await _latest_run(client, workflow_id)
    if described is None or described.task_queue == task_queue:
        return False
    if described.status in ENDED_WITH_ACTIVITY_UNKNOWN:
        return True
    if described.status is not WorkflowExecutionStatus.RUNNING:
        return False
    # By run id: a process moving the followers at the same time may have started the new
    # run already, and that one must not be ended.
    run = client.get_workflow_handle(workflow_id, run_id=described.run_id)
    try:
        await run.terminate(reason=f"moved from task queue {described.task_queue} to {task_queue}")
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
    return True


async def _running_elsewhere(
    client: Client, workflow_id: str, task_queue: str
) -> WorkflowExecutionDescription | None:
    """The follower's running run, if it runs on another task queue than `task_queue`."""
    described = await _latest_run(client, workflow_id)
    if described is None or described.status is not WorkflowExecutionStatus.RUNNING:
        return None
    if described.task_queue == task_queue:
        return None
    return described


async def _latest_run(client: Client, workflow_id: str) -> WorkflowExecutionDescription | None:
    try:
        return await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return None


async def _start_relay(client: Client, task_queue: str) -> object:
    return await client.start_workflow(
        RelayWorkflow.run,
        id=RELAY_WORKFLOW_ID,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


async def _start_pattern_detector(client: Client, task_queue: str) -> object:
    return await client.start_workflow(
        PatternDetectorWorkflow.run,
        id=PATTERN_DETECTOR_WORKFLOW_ID,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


async def _start_projector(projection: str, client: Client, task_queue: str) -> object:
    return await client.start_workflow(
        ProjectorWorkflow.run,
        projection,
        id=projector_workflow_id(projection),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
