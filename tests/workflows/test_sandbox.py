"""The workflows run unsandboxed in the worker; the tests' sandbox is the determinism check.

The worker runs its workflows with `UnsandboxedWorkflowRunner` (the sandbox's re-import of a
workflow's module for every run was the largest single cost of a transfer in the worker). The
tests' workers and the replay of every recorded history run them in the sandbox, so a workflow
that calls something non-deterministic still fails a test.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner

from runtime.worker import sandboxed_runner
from tests.workflows.clock_reading import ReadsTheClock

ENDS_WITHIN = 60.0


async def run_on(client: Client, runner: WorkflowRunner) -> str:
    """ReadsTheClock's result on a worker of its own with `runner`."""
    queue = f"sandbox-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[ReadsTheClock], workflow_runner=runner):
        handle = await client.start_workflow(
            ReadsTheClock.run, id=f"reads-the-clock-{uuid.uuid4()}", task_queue=queue
        )
        return await asyncio.wait_for(handle.result(), ENDS_WITHIN)


async def test_the_tests_sandbox_fails_a_workflow_that_reads_the_clock(client: Client) -> None:
    with pytest.raises(WorkflowFailureError) as failure:
        await run_on(client, sandboxed_runner())

    assert "datetime.datetime.now" in str(failure.value.cause)


async def test_unsandboxed_the_same_workflow_runs_so_only_the_tests_catch_it(
    client: Client,
) -> None:
    assert await run_on(client, UnsandboxedWorkflowRunner())
