"""How `start_followers` moves followers off another task queue, against an in-memory Temporal.

The real move, with workers and checkpoints, is in tests/workflows/test_follower_queue.py;
these cover the races of a rolling upgrade that a real server makes hard to time.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from runtime import followers
from runtime.followers import follower_starts, start_followers

OURS = "sagaline-followers"
SHARED = "sagaline"
PROJECTIONS = ["users"]
RUN_IDS = itertools.count(1)


@dataclass
class Run:
    """One run of a workflow id, as `describe` tells it."""

    task_queue: str
    status: WorkflowExecutionStatus = WorkflowExecutionStatus.RUNNING
    run_id: str = field(default_factory=lambda: f"run-{next(RUN_IDS)}")


class Handle:
    def __init__(self, temporal: FakeTemporal, workflow_id: str, run_id: str | None) -> None:
        self._temporal = temporal
        self._workflow_id = workflow_id
        self._run_id = run_id

    async def describe(self) -> Run:
        runs = self._temporal.runs.get(self._workflow_id)
        if not runs:
            raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")
        return runs[-1]

    async def terminate(self, reason: str = "") -> None:
        runs = self._temporal.runs.get(self._workflow_id, [])
        # Without a run id, Temporal ends the latest run of the id.
        latest = runs[-1] if runs else None
        run = (
            latest
            if self._run_id is None
            else next((r for r in runs if r.run_id == self._run_id), None)
        )
        if run is None or run.status is not WorkflowExecutionStatus.RUNNING:
            raise RPCError("workflow execution already completed", RPCStatusCode.NOT_FOUND, b"")
        run.status = WorkflowExecutionStatus.TERMINATED
        self._temporal.terminated.append(self._workflow_id)
        self._temporal.after_terminate(self._temporal, self._workflow_id)


@dataclass
class FakeTemporal:
    """Runs by workflow id (the latest last); `after_terminate` plays whatever else happens
    right after a terminate (another process, an older worker)."""

    runs: dict[str, list[Run]] = field(default_factory=dict)
    terminated: list[str] = field(default_factory=list)
    started_at: dict[str, float] = field(default_factory=dict)
    """When each workflow id's latest run started, by the event loop's clock."""
    after_terminate: Callable[[FakeTemporal, str], None] = lambda temporal, workflow_id: None

    def get_workflow_handle(self, workflow_id: str, *, run_id: str | None = None) -> Handle:
        return Handle(self, workflow_id, run_id)

    async def start_workflow(
        self, _run: Any, *_args: Any, id: str, task_queue: str, **_: Any
    ) -> None:
        self.start(id, task_queue)

    def start(self, workflow_id: str, task_queue: str) -> None:
        """Start a run unless one runs (USE_EXISTING)."""
        runs = self.runs.setdefault(workflow_id, [])
        if not runs or runs[-1].status is not WorkflowExecutionStatus.RUNNING:
            runs.append(Run(task_queue))
            self.started_at[workflow_id] = asyncio.get_running_loop().time()

    def queues(self) -> dict[str, str]:
        """The task queue of each workflow id's running run."""
        return {
            workflow_id: runs[-1].task_queue
            for workflow_id, runs in self.runs.items()
            if runs and runs[-1].status is WorkflowExecutionStatus.RUNNING
        }


NO_HANDOVER = timedelta(0)
FOREVER = timedelta(hours=1)


def every_follower() -> list[str]:
    return list(follower_starts(PROJECTIONS))


async def test_followers_never_started_are_started_on_their_queue() -> None:
    temporal = FakeTemporal()

    await start_followers(cast(Client, temporal), OURS, PROJECTIONS, NO_HANDOVER)

    assert temporal.queues() == dict.fromkeys(every_follower(), OURS)
    assert temporal.terminated == []


async def test_followers_on_the_shared_queue_are_ended_and_started_on_their_own() -> None:
    temporal = FakeTemporal()
    for workflow_id in every_follower():
        temporal.start(workflow_id, SHARED)
    old = {workflow_id: runs[-1] for workflow_id, runs in temporal.runs.items()}

    await start_followers(cast(Client, temporal), OURS, PROJECTIONS, NO_HANDOVER)

    assert temporal.queues() == dict.fromkeys(every_follower(), OURS)
    assert sorted(temporal.terminated) == sorted(every_follower())
    assert all(run.status is WorkflowExecutionStatus.TERMINATED for run in old.values())


async def test_followers_already_on_their_queue_are_left_running() -> None:
    temporal = FakeTemporal()
    for workflow_id in every_follower():
        temporal.start(workflow_id, OURS)
    before = {workflow_id: runs[-1].run_id for workflow_id, runs in temporal.runs.items()}

    await start_followers(cast(Client, temporal), OURS, PROJECTIONS, NO_HANDOVER)

    assert {w: runs[-1].run_id for w, runs in temporal.runs.items()} == before
    assert temporal.terminated == []


async def test_a_follower_an_older_worker_starts_again_on_the_shared_queue_is_moved_again() -> None:
    restarted: list[str] = []

    def older_worker_restarts_the_relay(temporal: FakeTemporal, workflow_id: str) -> None:
        if workflow_id == "relay" and not restarted:
            restarted.append(workflow_id)
            temporal.start(workflow_id, SHARED)

    temporal = FakeTemporal(after_terminate=older_worker_restarts_the_relay)
    for workflow_id in every_follower():
        temporal.start(workflow_id, SHARED)

    await start_followers(cast(Client, temporal), OURS, PROJECTIONS, NO_HANDOVER)

    assert temporal.queues() == dict.fromkeys(every_follower(), OURS)
    assert temporal.terminated.count("relay") == 2


def older_worker_restarting(workflow_id: str, times: int) -> Callable[[FakeTemporal, str], None]:
    """An older worker that starts `workflow_id` on the shared queue again after each of
    its first `times` terminates."""
    restarted: list[str] = []

    def restart(temporal: FakeTemporal, ended: str) -> None:
        if ended == workflow_id and len(restarted) < times:
            restarted.append(ended)
            temporal.start(ended, SHARED)

    return restart


async def test_a_follower_moved_in_the_last_round_is_not_reported_as_elsewhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    temporal = FakeTemporal(
        after_terminate=older_worker_restarting("relay", followers.MOVE_ATTEMPTS - 1)
    )
    for workflow_id in every_follower():
        temporal.start(workflow_id, SHARED)

    await start_followers(cast(Client, temporal), OURS, PROJECTIONS, NO_HANDOVER)

    assert temporal.queues() == dict.fromkeys(every_follower(), OURS)
    assert temporal.terminated.count("relay") == followers.MOVE_ATTEMPTS
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_follower_started_elsewhere_after_every_round_is_reported_by_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    temporal = FakeTemporal(after_terminate=older_worker_restarting("relay", 1_000))
    for workflow_id in every_follower():
        temporal.start(workflow_id, SHARED)

    await start_followers(cast(Client, temporal), OURS, PROJECTIONS, NO_HANDOVER)

    assert temporal.queues()["relay"] == SHARED
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].endswith(": relay")


async def test_a_run_another_process_moved_meanwhile_is_left_to_it() -> None:
    # Another followers process ends the relay's old run and starts the new one between our
    # describe and our terminate: ours must not end that new run.
    temporal = FakeTemporal()
    temporal.start("relay", SHARED)
    describe = Handle.describe

    async def moved_by_another_after_describe(handle: Handle) -> Run:
        described = await describe(handle)
        if described.task_queue == SHARED:
            described.status = WorkflowExecutionStatus.TERMINATED
            temporal.start("relay", OURS)
            return Run(SHARED, run_id=described.run_id)
        return described

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Handle, "describe", moved_by_another_after_describe)
        await start_followers(cast(Client, temporal), OURS, PROJECTIONS, NO_HANDOVER)

    relay_runs = temporal.runs["relay"]
    assert [run.task_queue for run in relay_runs] == [SHARED, OURS]
    assert relay_runs[-1].status is WorkflowExecutionStatus.RUNNING
    assert temporal.terminated == []


async def test_a_follower_another_process_ended_elsewhere_waits_out_the_handover_here() -> None:
    # Another followers process ended the relay's run on the shared queue a moment ago: its
    # activity may still run on an older worker, so this one waits before starting it too.
    temporal = FakeTemporal()
    temporal.start("relay", SHARED)
    temporal.runs["relay"][-1].status = WorkflowExecutionStatus.TERMINATED
    handover = timedelta(seconds=0.2)
    began = asyncio.get_running_loop().time()

    await start_followers(cast(Client, temporal), OURS, PROJECTIONS, handover)

    assert temporal.queues() == dict.fromkeys(every_follower(), OURS)
    assert temporal.terminated == []
    assert temporal.started_at["relay"] - began >= handover.total_seconds()


async def test_followers_ended_on_their_own_queue_or_never_started_start_at_once() -> None:
    temporal = FakeTemporal()
    temporal.start("relay", OURS)
    temporal.runs["relay"][-1].status = WorkflowExecutionStatus.TERMINATED

    async with asyncio.timeout(10):
        await start_followers(cast(Client, temporal), OURS, PROJECTIONS, FOREVER)

    assert temporal.queues() == dict.fromkeys(every_follower(), OURS)
