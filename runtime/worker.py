"""The worker process: the command and saga workflows and their activities.

The followers (relay, projectors, pattern detector) run in a process of their own on their
own task queue (`runtime.followers`), so their batches never hold up a saga's steps.
"""

from __future__ import annotations

import functools
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import (
    PollerBehaviorSimpleMaximum,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.accounts import AccountActivities
from activities.transfers import TransferActivities
from activities.users import UserActivities
from adapters.credentials import PostgresCredentials
from adapters.event_store import PostgresEventStore
from adapters.snapshots import PostgresSnapshotStore
from adapters.store_metrics import MeasuredEventStore
from domain.aggregate_cache import AggregateCache
from domain.repository import Repository
from runtime.config import Settings
from runtime.saga_metrics import SagaMetricsInterceptor
from runtime.serving import serve
from runtime.worker_metrics import WorkerMetrics
from workflows.accounts import (
    CloseAccountWorkflow,
    DepositMoneyWorkflow,
    OpenAccountWorkflow,
    WithdrawMoneyWorkflow,
)
from workflows.transfers import TransferSaga
from workflows.users import (
    ChangeUserEmailWorkflow,
    LockUserWorkflow,
    RecordLoginAttemptWorkflow,
    RegisterUserWorkflow,
    UnlockUserWorkflow,
)

log = logging.getLogger(__name__)

POOL_SIZE = 40
"""Database connections of a worker (pool plus overflow), and so its activity slots."""

TASK_QUEUE_PARTITIONS = 4
"""How many partitions Temporal splits a task queue into unless told otherwise (its dev
server too). A poll waits on one partition; a task written to one that nobody polls waits
until it is forwarded to a polled one."""

NEW_WORKFLOW_TASK_POLLS = 6
"""Polls at once of the task queue itself, where the first workflow task of every workflow
goes: at least one per partition, with room for the polls being renewed. A transfer is
usually one workflow task, so this is where it waits for the worker. The SDK's default
(one of its five polls) left the tasks on the other partitions waiting for forwarding: with
12 API clients their schedule-to-start p99 was 0.7-1.7 s against 0.15-0.35 s with six."""

STICKY_WORKFLOW_TASK_POLLS = 4
"""Polls at once of the worker's own (sticky, single-partition) queue, where the later
workflow tasks of a run it holds go: every command's second task (after its activity), a
compensation, a retry, an operator's update. Four, as the SDK's default split gave."""

WORKFLOW_TASK_POLLS = NEW_WORKFLOW_TASK_POLLS + STICKY_WORKFLOW_TASK_POLLS

WORKFLOWS = [
    RegisterUserWorkflow,
    ChangeUserEmailWorkflow,
    LockUserWorkflow,
    UnlockUserWorkflow,
    RecordLoginAttemptWorkflow,
    OpenAccountWorkflow,
    DepositMoneyWorkflow,
    WithdrawMoneyWorkflow,
    CloseAccountWorkflow,
    TransferSaga,
]

# Helpers the workflows share that keep no state between runs: in the sandbox, imported once
# for all runs instead of again inside every run's sandbox. The sandbox's checks for
# non-deterministic calls do not cover passed-through modules, so these must stay free of
# clocks, randomness and I/O (the workflow APIs they call are deterministic).
SHARED_WORKFLOW_MODULES = (
    "workflows.saga",
    "workflows.command_outcomes",
    "workflows.search_attributes",
)


async def run_worker(settings: Settings) -> None:
    """Run the worker until cancelled; a metrics port that is taken stops it before it starts."""
    # With SAGALINE_METRICS=false nothing is counted: the plain store, no saga interceptor,
    # no consumer metrics, no /metrics server and the SDK's default runtime.
    await serve(
        settings,
        "worker",
        task_queue=settings.temporal_task_queue,
        pool_size=POOL_SIZE,
        metrics=WorkerMetrics if settings.metrics else None,
        open_store=_open_store,
        create_worker=functools.partial(create_worker, settings),
        log=log,
    )


def _open_store(engine: AsyncEngine, metrics: WorkerMetrics | None) -> PostgresEventStore:
    """The worker's event store; with `metrics`, its appends and pools are measured."""
    if metrics is None:
        return PostgresEventStore(engine)
    store = MeasuredEventStore(engine, metrics.appends)
    metrics.watch_pools(engine, store)
    return store


def create_worker(
    settings: Settings,
    client: Client,
    engine: AsyncEngine,
    store: PostgresEventStore,
    metrics: WorkerMetrics | None = None,
) -> Worker:
    """A worker for every command and saga workflow and activity, wired to real adapters.

    The caller owns `engine` and `store` (whose append connections it closes after the run).
    With `metrics`, sagas report into them.
    """
    cache = AggregateCache(settings.aggregate_cache_size) if settings.aggregate_cache_size else None
    repository = Repository(
        store, PostgresSnapshotStore(engine), settings.snapshot_intervals(), cache
    )
    attempts = settings.command_attempts
    users = UserActivities(repository, PostgresCredentials(engine, store), attempts)
    accounts = AccountActivities(repository, attempts)
    transfers = TransferActivities(repository, attempts)
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=[
            users.register_user,
            users.change_user_email,
            users.lock_user,
            users.unlock_user,
            users.record_login_attempt,
            accounts.open_account,
            accounts.deposit_money,
            accounts.withdraw_money,
            accounts.close_account,
            *transfers.all(),
        ],
        # No more activities at once than the pool has connections, so none waits on a
        # connection past its timeout; the same for the saga steps run as local activities.
        # A transfer's workflow task stays open while its steps run, so no more workflow
        # tasks than local activity slots either: a step then never queues for a slot while
        # its workflow task's timeout runs; the other sagas wait in the task queue.
        max_concurrent_activities=POOL_SIZE,
        max_concurrent_local_activities=POOL_SIZE,
        max_concurrent_workflow_tasks=POOL_SIZE,
        # The SDK gives the task queue itself this share of the polls, rounded down (in
        # single precision) and at least one each; half a poll more keeps the rounding
        # from taking one away.
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(WORKFLOW_TASK_POLLS),
        nonsticky_to_sticky_poll_ratio=(NEW_WORKFLOW_TASK_POLLS + 0.5) / WORKFLOW_TASK_POLLS,
        graceful_shutdown_timeout=timedelta(seconds=5),
        interceptors=[SagaMetricsInterceptor(metrics.sagas)] if metrics else [],
        workflow_runner=workflow_runner(settings),
    )


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """How the worker runs its workflows: outside the sandbox unless `workflow_sandbox` is set.

    The sandbox re-imports a workflow's module for every run and proxies its calls, which cost
    the worker more CPU per transfer than anything else it did. The tests run every workflow
    in the sandbox (their worker, and the replay of every recorded history), so a workflow
    that calls something non-deterministic fails there instead of in production.
    """
    return sandboxed_runner() if settings.workflow_sandbox else UnsandboxedWorkflowRunner()


def sandboxed_runner() -> SandboxedWorkflowRunner:
    """Temporal's workflow sandbox, with the shared helpers passed through."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*SHARED_WORKFLOW_MODULES)
    )
