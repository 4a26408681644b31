"""A saga that declares its compensations independent runs them at the same time.

No product saga declares that yet (TransferSaga's refund must precede the release of its
daily limit), so a small saga of the test's own exercises the helper on a real server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import ClassVar

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from activities.command_handling import rejections
from domain.accounts import InsufficientFunds
from workflows.saga import Saga, SagaState, SagaStatus, StepRejected

ONCE = RetryPolicy(maximum_attempts=1)
TIMEOUT = timedelta(seconds=60)


class Undos:
    """Compensations that say when they start and finish only when the test lets them."""

    started: ClassVar[dict[str, asyncio.Event]] = {}
    finished: ClassVar[dict[str, asyncio.Event]] = {}
    gates: ClassVar[dict[str, asyncio.Event]] = {}

    @activity.defn
    async def do(self, name: str) -> None:
        """A step that changes nothing."""

    @activity.defn
    async def refuse(self, name: str) -> None:
        """A step the business refuses, as a command activity reports any rejection."""
        with rejections(name, [InsufficientFunds]):
            raise InsufficientFunds(name, Decimal("0.00"), Decimal("1.00"))

    @activity.defn
    async def undo(self, name: str) -> None:
        Undos.started[name].set()
        await Undos.gates[name].wait()
        Undos.finished[name].set()


@workflow.defn(sandboxed=False)
class IndependentUndosSaga:
    """Two steps with independent compensations, then a step that is refused."""

    @workflow.run
    async def run(self, parallel: bool) -> SagaState:
        saga = Saga("IndependentUndosSaga", parallel_compensation=parallel)

        def call(method: object, name: str) -> object:
            return lambda: workflow.execute_activity_method(
                method,  # type: ignore[arg-type]
                name,
                start_to_close_timeout=TIMEOUT,
                retry_policy=ONCE,
            )

        try:
            for name in ("first", "second"):
                await saga.step(name, call(Undos.do, name), [(name, call(Undos.undo, name))])  # type: ignore[arg-type]
            await saga.step("third", call(Undos.refuse, "third"))  # type: ignore[arg-type]
        except StepRejected:
            await saga.compensate()
        return saga.state


@pytest.fixture
async def undos_queue(client: Client) -> AsyncIterator[str]:
    queue = f"undos-{uuid.uuid4()}"
    for name in ("first", "second"):
        Undos.started[name], Undos.finished[name], Undos.gates[name] = (
            asyncio.Event(),
            asyncio.Event(),
            asyncio.Event(),
        )
    undos = Undos()
    activities = [undos.do, undos.refuse, undos.undo]
    async with Worker(
        client, task_queue=queue, workflows=[IndependentUndosSaga], activities=activities
    ):
        yield queue
        for gate in Undos.gates.values():
            gate.set()


async def test_independent_compensations_both_start_before_either_finishes(
    client: Client, undos_queue: str
) -> None:
    handle = await client.start_workflow(
        IndependentUndosSaga.run, True, id=f"undos-{uuid.uuid4()}", task_queue=undos_queue
    )

    await asyncio.wait_for(Undos.started["first"].wait(), 30)
    await asyncio.wait_for(Undos.started["second"].wait(), 30)
    assert not Undos.finished["first"].is_set() and not Undos.finished["second"].is_set()
    for gate in Undos.gates.values():
        gate.set()
    state = await asyncio.wait_for(handle.result(), 60)

    assert state.status is SagaStatus.COMPENSATED
    assert sorted(state.compensations) == ["first", "second"]


async def test_dependent_compensations_run_one_after_the_other_latest_first(
    client: Client, undos_queue: str
) -> None:
    handle = await client.start_workflow(
        IndependentUndosSaga.run, False, id=f"undos-{uuid.uuid4()}", task_queue=undos_queue
    )

    await asyncio.wait_for(Undos.started["second"].wait(), 30)
    assert not Undos.started["first"].is_set()
    Undos.gates["second"].set()
    await asyncio.wait_for(Undos.started["first"].wait(), 30)
    Undos.gates["first"].set()
    state = await asyncio.wait_for(handle.result(), 60)

    assert state.status is SagaStatus.COMPENSATED
    assert state.compensations == ["second", "first"]
