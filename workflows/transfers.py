"""TransferSaga: reserve the daily limit, withdraw, deposit, complete; compensate on refusal.

A step that fails for a reason that is neither a rule nor an outage parks the saga as
NEEDS_ATTENTION (see workflows.saga); failing at its first step, it ends FAILED at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows import search_attributes
from workflows.command_outcomes import COMMAND_RETRY, COMMAND_TIMEOUT
from workflows.saga import Saga, SagaState, StepFailed, StepRejected

with workflow.unsafe.imports_passed_through():
    from activities.command_handling import COMMAND_FAILED
    from activities.transfers import RejectTransfer, TransferActivities
    from domain.rejections import REJECTION_CODES
    from domain.transfers import TransferMoney, TransferStep

SAGA_TYPE = "TransferSaga"
REFUSALS_RECORD_NOTHING = "refusals-record-nothing"
CANCELLED_TRANSFERS_RECORD_THEIR_END = "cancelled-transfers-record-their-end"
CANCELLED_REASON = "the transfer was cancelled before the money reached the receiver"
CANCELLED_TYPE = "TransferCancelled"

# Compensations are retried with backoff for a while; past that the saga parks for an operator.
# A transfer may name its own number of attempts (TransferMoney.compensation_attempts). A
# compensation rejected by a business rule parks the saga at once: retrying would not help.
COMPENSATION_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=8,
    non_retryable_error_types=list(REJECTION_CODES),
)


def transfer_workflow_id(transfer_id: str) -> str:
    """The workflow id of a transfer: one saga per transfer id."""
    return f"transfer/{transfer_id}"


@dataclass(frozen=True)
class TransferOutcome:
    """How a transfer ended (COMPLETED, REJECTED or FAILED), with its last event's position."""

    transfer_id: str
    status: str
    position: int
    reason: str | None = None
    error_type: str | None = None


@workflow.defn
class TransferSaga:
    """Moves money between two accounts; money is never created or lost, whatever fails."""

    def __init__(self) -> None:
        self._saga = Saga(SAGA_TYPE)

    @workflow.run
    async def run(self, command: TransferMoney) -> TransferOutcome:
        saga = self._saga
        workflow.upsert_search_attributes(
            [
                search_attributes.SAGA_TYPE.value_set(SAGA_TYPE),
                search_attributes.COMMAND_ID.value_set(command.transfer_id),
                search_attributes.AGGREGATE_IDS.value_set(
                    [command.transfer_id, command.from_account_id, command.to_account_id]
                ),
            ]
        )

        def step(
            method: Callable[[Any, TransferMoney], Coroutine[Any, Any, int]],
        ) -> Callable[[], Coroutine[Any, Any, int]]:
            return lambda: workflow.execute_activity_method(
                method,
                command,
                start_to_close_timeout=COMMAND_TIMEOUT,
                retry_policy=COMMAND_RETRY,
                summary=method.__name__,
            )

        compensation_retry = COMPENSATION_RETRY
        if command.compensation_attempts is not None:
            compensation_retry = replace(
                COMPENSATION_RETRY, maximum_attempts=command.compensation_attempts
            )

        def compensation(
            method: Callable[[Any, TransferMoney], Coroutine[Any, Any, int]],
        ) -> Callable[[], Coroutine[Any, Any, int]]:
            return lambda: workflow.execute_activity_method(
                method,
                command,
                start_to_close_timeout=COMMAND_TIMEOUT,
                retry_policy=compensation_retry,
                summary=f"compensate: {method.__name__}",
            )

        activities = TransferActivities
        try:
            await saga.step("begin", step(activities.begin_transfer))
            await saga.step(
                TransferStep.RESERVE_DAILY_LIMIT.value,
                step(activities.reserve_daily_limit),
                compensation(activities.release_daily_limit),
            )
            await saga.step(
                TransferStep.WITHDRAW.value,
                step(activities.withdraw),
                compensation(activities.refund),
            )
            # Once the receiver has the money the transfer can only complete: nothing to undo.
            await saga.step(TransferStep.DEPOSIT.value, step(activities.deposit), pivot=True)
            position = await saga.step("complete", step(activities.complete_transfer))
        except StepRejected as rejected:
            await saga.compensate()
            rejection = rejected.rejection
            position = 0
            # A transfer refused by its first check (unknown account, locked sender) is bad
            # input: it changes nothing, not even the transfer's own record.
            if rejected.step != "begin" or not workflow.patched(REFUSALS_RECORD_NOTHING):
                position = await self._record_rejection(command, rejection.message, rejection.type)
            return TransferOutcome(
                command.transfer_id, "REJECTED", position, rejection.message, rejection.type
            )
        except StepFailed as failed:
            # Only a first step fails this way (a later one parks the saga): nothing to undo,
            # and nothing to record, as for a refused first check.
            await saga.compensate()
            return TransferOutcome(
                command.transfer_id, "FAILED", 0, failed.failure.message, COMMAND_FAILED
            )
        except asyncio.CancelledError:
            await saga.compensate()
            if workflow.patched(CANCELLED_TRANSFERS_RECORD_THEIR_END):
                await self._record_rejection(command, CANCELLED_REASON, CANCELLED_TYPE)
            raise
        saga.complete()
        return TransferOutcome(command.transfer_id, "COMPLETED", position)

    async def _record_rejection(self, command: TransferMoney, reason: str, error_type: str) -> int:
        return await workflow.execute_activity_method(
            TransferActivities.reject_transfer,
            RejectTransfer(command, reason, error_type),
            start_to_close_timeout=COMMAND_TIMEOUT,
            retry_policy=COMMAND_RETRY,
        )

    @workflow.query
    def state(self) -> SagaState:
        """The saga's status, current step, completed steps, compensations and error."""
        return self._saga.state

    @workflow.update
    def retry(self) -> SagaState:
        """An operator's retry of a saga parked as NEEDS_ATTENTION."""
        return self._saga.request_retry()

    @retry.validator
    def validate_retry(self) -> None:
        self._saga.validate_retry()
