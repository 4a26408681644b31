"""A saga helper for workflows: steps with compensations, and an operator's way back in.

Each step registers its compensation *before* it runs, so a step whose outcome is unknown
is still compensated; compensations therefore must be safe to run when their step changed
nothing. A step that was *rejected* by a business rule changed nothing, so its own
compensation is dropped. A cancellation that arrives while a step runs waits for the step to
end, so a compensation never races the step it undoes. A *pivot* step is the point of no
return (for a transfer: the money reached the receiver): once it succeeds nothing is owed any
more, and the saga finishes forward whatever is cancelled after it.

A step that *failed* for a reason that is neither a rule nor an outage (a bug, bad data) parks
the saga as NEEDS_ATTENTION while anything is owed or the pivot is passed: an operator's retry
runs the step again; a cancellation before the pivot ends the wait and compensates. A step
failing with nothing done yet (nothing owed) raises StepFailed: the saga ends at once.

On failure the registered compensations run in reverse order (or all at once when the saga
declares them independent), shielded from cancellation, each retried with backoff. One that
still fails parks the saga as NEEDS_ATTENTION: it waits, visible in the Temporal UI, until an
operator asks for a retry, then runs the compensations that are still owed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import search_attributes
from workflows.command_outcomes import (
    Failure,
    Rejection,
    failure_of,
    refusing_step,
    rejection_of,
)
from workflows.saga_metrics import SagaReport, report

T = TypeVar("T")
STEPS_FINISH_BEFORE_COMPENSATING = "steps-finish-before-compensating"
COMPENSATION_OUTLASTS_CANCELLATION = "compensation-outlasts-cancellation"
FAILED_STEPS_PARK = "failed-steps-park"
Compensation = Callable[[], Awaitable[object]]


class SagaStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPENSATING = "COMPENSATING"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"
    COMPLETED = "COMPLETED"
    COMPENSATED = "COMPENSATED"


@dataclass
class SagaState:
    """What an operator (or the `saga` query) sees of a saga."""

    saga_type: str
    status: SagaStatus = SagaStatus.RUNNING
    current_step: str | None = None
    completed_steps: list[str] = field(default_factory=list)
    compensations: list[str] = field(default_factory=list)
    error: str | None = None
    error_details: dict[str, str] | None = None
    """The details of the rejection `error` names (a refusal's facts), if it names one."""
    operator_retries: int = 0
    started_at: datetime | None = None
    closed_at: datetime | None = None


class StepRejected(Exception):
    """A step was refused by a business rule; the saga compensates and ends rejected."""

    def __init__(self, step: str, rejection: Rejection) -> None:
        super().__init__(f"{step}: {rejection.message}")
        self.step = step
        self.rejection = rejection


class StepFailed(Exception):
    """A step failed, not by a rule nor an outage, before the saga had done anything."""

    def __init__(self, step: str, failure: Failure) -> None:
        super().__init__(f"{step}: {failure.message}")
        self.step = step
        self.failure = failure


class SagaNotRetryable(ApplicationError):
    """An operator asked to retry a saga that is not waiting for one."""

    def __init__(self, status: SagaStatus) -> None:
        super().__init__(
            f"saga is {status.value}, only a NEEDS_ATTENTION saga can be retried",
            type="SagaNotRetryable",
            non_retryable=True,
        )


class Saga:
    """Runs steps, remembers their compensations, and compensates on failure."""

    def __init__(self, saga_type: str, parallel_compensation: bool = False) -> None:
        self.state = SagaState(saga_type=saga_type, started_at=workflow.now())
        self._parallel = parallel_compensation
        self._owed: list[tuple[str, Compensation]] = []
        self._retry_requested = False
        self._resumes_as = SagaStatus.COMPENSATING
        self._forward_only = False
        report(SagaReport.STARTED, saga_type)

    async def step(
        self,
        name: str | tuple[str, ...],
        action: Callable[[], Awaitable[T]],
        compensations: Sequence[tuple[str, Compensation]] = (),
        *,
        pivot: bool = False,
    ) -> T:
        """Run one step; its compensations are registered before it starts, each named after
        the step it undoes.

        A cancellation while the step runs is raised once the step has succeeded, unless the
        saga is past its pivot (or this step is the pivot): then the saga only goes forward. A
        step rejected meanwhile raises StepRejected, and the saga compensates as for any
        rejection. A step that failed is parked, or raises StepFailed (see the module).

        A tuple names several steps that `action` runs in one transaction: they are listed
        as completed together, and a rejection names the one that refused (refusing_step; the
        first if it names none) after the ones before it. Such a step registers one
        compensation per step it runs that needs undoing, run in reverse order as if the
        steps had run one by one; since a transaction that failed did nothing, a rejection or
        a failure drops them all alike.
        """
        parts = (name,) if isinstance(name, str) else name
        label = " + ".join(parts)
        self.state.current_step = label
        workflow.set_current_details(f"step: {label}")
        mine = list(compensations)
        self._owed.extend(mine)
        running = asyncio.ensure_future(action())
        cancelled: asyncio.CancelledError | None = None
        while True:
            try:
                result = await asyncio.shield(running)
                break
            except asyncio.CancelledError as cancellation:
                if not workflow.patched(STEPS_FINISH_BEFORE_COMPENSATING):
                    # Histories from before: the step itself was cancelled and ended with it.
                    if running.done():
                        raise
                    running.cancel()
                    continue
                cancelled = cancellation
                _uncancel()
            except ActivityError as error:
                rejection = rejection_of(error)
                if rejection is not None:
                    if mine:
                        del self._owed[-len(mine) :]
                    refused = label
                    if len(parts) > 1:
                        step = refusing_step(error)
                        refused = step if step in parts else parts[0]
                        self.state.completed_steps.extend(parts[: parts.index(refused)])
                    self.state.error = f"{refused}: {rejection.message}"
                    self.state.error_details = dict(rejection.details) or None
                    raise StepRejected(refused, rejection) from None
                failure = failure_of(error)
                if failure is None or not workflow.patched(FAILED_STEPS_PARK):
                    raise
                self.state.error = f"{label}: {failure.message}"
                self.state.error_details = None
                # Steps sharing one transaction that failed did nothing: ending here, not
                # even their own compensation is owed. Parked, it stays for the retry.
                own = len(mine) if len(parts) > 1 else 0
                if len(self._owed) == own and not self._forward_only:
                    self._owed.clear()
                    raise StepFailed(label, failure) from None
                if cancelled is not None and not self._forward_only:
                    raise cancelled from None
                await self._park_failed_step()
                running = asyncio.ensure_future(action())
        self.state.completed_steps.extend(parts)
        if pivot:
            self._owed.clear()
            self._forward_only = True
        if cancelled is not None and not self._forward_only:
            raise cancelled
        return result

    async def compensate(self) -> None:
        """Run every owed compensation, shielded from cancellation; park while one fails.

        A cancellation meanwhile, even of a parked saga, changes nothing: what the saga did is
        undone whatever happens to it, and it then ends as it would have.
        """
        self._set_status(SagaStatus.COMPENSATING)
        while self._owed:
            try:
                await self._to_the_end(self._run_owed())
            except ActivityError as error:
                cause = error.cause if error.cause is not None else error
                self.state.error = f"compensation failed: {cause}"
                self.state.error_details = None
                await self._wait_for_operator()
        self._set_status(SagaStatus.COMPENSATED)

    def complete(self) -> None:
        """Mark the saga as done without compensation."""
        self.state.current_step = None
        self._set_status(SagaStatus.COMPLETED)

    def request_retry(self) -> SagaState:
        """An operator's retry of a parked saga; the answer is the state it resumes in."""
        if self.state.status is not SagaStatus.NEEDS_ATTENTION:
            raise SagaNotRetryable(self.state.status)
        self._retry_requested = True
        self.state.operator_retries += 1
        # The saga leaves NEEDS_ATTENTION as soon as it runs again, after this handler.
        return replace(self.state, status=self._resumes_as)

    def validate_retry(self) -> None:
        """Refuse a retry before it is accepted into history."""
        if self.state.status is not SagaStatus.NEEDS_ATTENTION:
            raise SagaNotRetryable(self.state.status)

    async def _run_owed(self) -> None:
        if self._parallel:
            owed = list(self._owed)
            results = await asyncio.gather(*(c() for _, c in owed), return_exceptions=True)
            for (name, compensation), result in zip(owed, results, strict=True):
                if isinstance(result, BaseException):
                    self._report_compensation(SagaReport.COMPENSATION_FAILED, name)
                else:
                    self._owed.remove((name, compensation))
                    self.state.compensations.append(name)
                    self._report_compensation(SagaReport.COMPENSATION_SUCCEEDED, name)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                raise failures[0]
            return
        while self._owed:
            name, compensation = self._owed[-1]
            self.state.current_step = f"compensate {name}"
            workflow.set_current_details(f"compensating: {name}")
            try:
                await compensation()
            except ActivityError:
                self._report_compensation(SagaReport.COMPENSATION_FAILED, name)
                raise
            self._owed.pop()
            self.state.compensations.append(name)
            self._report_compensation(SagaReport.COMPENSATION_SUCCEEDED, name)

    def _report_compensation(self, kind: SagaReport, step: str) -> None:
        report(kind, self.state.saga_type, step)

    async def _wait_for_operator(self) -> None:
        self._park(SagaStatus.COMPENSATING)
        await self._to_the_end(workflow.wait_condition(lambda: self._retry_requested))
        self._set_status(SagaStatus.COMPENSATING)

    async def _park_failed_step(self) -> None:
        """Wait for an operator's retry of the failed step.

        Before the pivot a cancellation ends the wait (the saga then compensates); past it
        the saga can only go forward, so it keeps waiting.
        """
        self._park(SagaStatus.RUNNING)
        while True:
            try:
                await workflow.wait_condition(lambda: self._retry_requested)
                break
            except asyncio.CancelledError:
                if not self._forward_only:
                    raise
                _uncancel()
        self._set_status(SagaStatus.RUNNING)

    def _park(self, resumes_as: SagaStatus) -> None:
        self._set_status(SagaStatus.NEEDS_ATTENTION)
        report(SagaReport.PARKED, self.state.saga_type)
        workflow.set_current_details(f"needs attention: {self.state.error}")
        self._retry_requested = False
        self._resumes_as = resumes_as

    async def _to_the_end(self, work: Awaitable[object]) -> None:
        """Await `work` to its end even if the workflow is cancelled meanwhile.

        Histories from before COMPENSATION_OUTLASTS_CANCELLATION raised the cancellation at
        once, and still do.
        """
        running = asyncio.ensure_future(work)
        while True:
            try:
                await asyncio.shield(running)
                return
            except asyncio.CancelledError:
                if not workflow.patched(COMPENSATION_OUTLASTS_CANCELLATION):
                    raise
                _uncancel()

    def _set_status(self, status: SagaStatus) -> None:
        self.state.status = status
        if status in (SagaStatus.COMPLETED, SagaStatus.COMPENSATED):
            self.state.closed_at = workflow.now()
            report(SagaReport.FINISHED, self.state.saga_type, status.value)
        workflow.upsert_search_attributes([search_attributes.SAGA_STATUS.value_set(status.value)])


def _uncancel() -> None:
    """Forget a cancellation that was caught, so later awaits are not cancelled again."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
