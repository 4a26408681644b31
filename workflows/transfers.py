"""TransferSaga: reserve the daily limit, withdraw, deposit, complete; compensate on refusal.

A step that fails for a reason that is neither a rule nor an outage parks the saga as
NEEDS_ATTENTION (see workflows.saga); failing at its first step, it ends FAILED at once.

Since STEPS_RUN_LOCALLY the steps and compensations are local activities: the worker that
runs the workflow task runs them too, and their results are recorded as markers when the task
completes, so a transfer that goes through is one workflow task instead of six tasks and five
activity tasks. That is safe because every step is idempotent: its event ids derive from the
workflow and the step's sequence number, and the transfer's record says which steps were
done, so a step run again after a lost workflow task (a worker that died) appends nothing
twice. Histories from before run their steps as activities, and still do.

Since STEPS_SHARE_TRANSACTIONS a transfer runs three local activities instead of five, each
pause between two of them being a round trip through the SDK: begin_and_reserve (begin's
checks and the reservation), withdraw, and deposit_and_complete (once the receiver has the
money the transfer can only complete). Each records what its two steps recorded, in one
transaction; the saga lists the same steps as completed. A refusal by begin's checks still
records nothing; one by the reservation still ends the transfer rejected, its record opened
and closed by reject_transfer, as before. Histories from before run five, and still do.

Since WITHDRAWAL_SHARES_TRANSACTION a transfer runs two: begin_reserve_and_withdraw takes the
money from the sender in the transaction that checks and reserves, saving a local activity
and its round trip. A refusal by the withdrawal (too little money) now records nothing, not
even the reservation: the transfer still ends rejected, its record opened and closed by
reject_transfer, with nothing to release. Once it went through, its compensations are the
ones the two steps registered before, refund then release_daily_limit. Histories from before
run three, and still do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

from workflows import search_attributes
from workflows.command_outcomes import COMMAND_RETRY, COMMAND_TIMEOUT
from workflows.saga import Saga, SagaState, StepFailed, StepRejected

with workflow.unsafe.imports_passed_through():
    from activities.command_handling import COMMAND_FAILED
    from activities.transfers import RejectTransfer, TransferActivities
    from domain.rejections import REJECTION_CODES
    from domain.transfers import TransferMoney, TransferStep

A = TypeVar("A")
SAGA_TYPE = "TransferSaga"
REFUSALS_RECORD_NOTHING = "refusals-record-nothing"
CANCELLED_TRANSFERS_RECORD_THEIR_END = "cancelled-transfers-record-their-end"
CANCELLED_REASON = "the transfer was cancelled before the money reached the receiver"
CANCELLED_TYPE = "TransferCancelled"
STEPS_RUN_LOCALLY = "steps-run-locally"
STEPS_SHARE_TRANSACTIONS = "steps-share-transactions"
WITHDRAWAL_SHARES_TRANSACTION = "withdrawal-shares-transaction"
BEGIN, COMPLETE = "begin", "complete"
NO_OUTCOME = "TransferEndedWithoutOutcome"

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
    details: dict[str, str] | None = None
    """The rejection's details: for a refusal with an account's figures, its facts
    (domain/refusals.py), from which a reader is shown the reason."""


@workflow.defn
class TransferSaga:
    """Moves money between two accounts; money is never created or lost, whatever fails."""

    def __init__(self) -> None:
        self._saga = Saga(SAGA_TYPE)
        self._local = False
        self._outcome: TransferOutcome | None = None
        self._ended = False

    @workflow.run
    async def run(self, command: TransferMoney) -> TransferOutcome:
        try:
            outcome = await self._transfer(command)
        finally:
            self._ended = True
        self._outcome = outcome
        # An `outcome` update waiting for it completes in this same workflow task. This
        # issues no command, so histories from before replay as they ran.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return outcome

    async def _transfer(self, command: TransferMoney) -> TransferOutcome:
        saga = self._saga
        self._local = workflow.patched(STEPS_RUN_LOCALLY)
        shared = self._local and workflow.patched(STEPS_SHARE_TRANSACTIONS)
        withdrawing = shared and workflow.patched(WITHDRAWAL_SHARES_TRANSACTION)
        attributes: list[SearchAttributeUpdate[Any]] = [
            search_attributes.SAGA_TYPE.value_set(SAGA_TYPE),
            search_attributes.COMMAND_ID.value_set(command.transfer_id),
            search_attributes.AGGREGATE_IDS.value_set(
                [command.transfer_id, command.from_account_id, command.to_account_id]
            ),
        ]
        # A saga started with its attributes (as the API starts it) has nothing to upsert.
        if not self._local or not _started_with(attributes):
            workflow.upsert_search_attributes(attributes)

        def step(
            method: Callable[[Any, TransferMoney], Coroutine[Any, Any, int]],
        ) -> Callable[[], Coroutine[Any, Any, int]]:
            return lambda: self._execute(method, command, COMMAND_RETRY, method.__name__)

        compensation_retry = COMPENSATION_RETRY
        if command.compensation_attempts is not None:
            compensation_retry = replace(
                COMPENSATION_RETRY, maximum_attempts=command.compensation_attempts
            )

        def compensation(
            method: Callable[[Any, TransferMoney], Coroutine[Any, Any, int]],
        ) -> Callable[[], Coroutine[Any, Any, int]]:
            return lambda: self._execute(
                method, command, compensation_retry, f"compensate: {method.__name__}"
            )

        activities = TransferActivities
        reserve, deposit = TransferStep.RESERVE_DAILY_LIMIT.value, TransferStep.DEPOSIT.value
        withdraw = TransferStep.WITHDRAW.value
        try:
            if withdrawing:
                # begin's checks, the reservation and the withdrawal in one transaction; a
                # refusal names which refused. Undone as the two steps were, last first.
                await saga.step(
                    (BEGIN, reserve, withdraw),
                    step(activities.begin_reserve_and_withdraw),
                    [
                        (reserve, compensation(activities.release_daily_limit)),
                        (withdraw, compensation(activities.refund)),
                    ],
                )
            elif shared:
                # begin's checks and the reservation in one transaction; a refusal names which
                # of the two refused (the saga helper reads it).
                await saga.step(
                    (BEGIN, reserve),
                    step(activities.begin_and_reserve),
                    [(reserve, compensation(activities.release_daily_limit))],
                )
            else:
                await saga.step(BEGIN, step(activities.begin_transfer))
                await saga.step(
                    reserve,
                    step(activities.reserve_daily_limit),
                    [(reserve, compensation(activities.release_daily_limit))],
                )
            if not withdrawing:
                await saga.step(
                    withdraw,
                    step(activities.withdraw),
                    [(withdraw, compensation(activities.refund))],
                )
            # Once the receiver has the money the transfer can only complete: nothing to undo.
            if shared:
                position = await saga.step(
                    (deposit, COMPLETE), step(activities.deposit_and_complete), pivot=True
                )
            else:
                await saga.step(deposit, step(activities.deposit), pivot=True)
                position = await saga.step(COMPLETE, step(activities.complete_transfer))
        except StepRejected as rejected:
            await saga.compensate()
            rejection = rejected.rejection
            position = 0
            # A transfer refused by its first check (unknown account, locked sender) is bad
            # input: it changes nothing, not even the transfer's own record.
            if rejected.step != BEGIN or not workflow.patched(REFUSALS_RECORD_NOTHING):
                position = await self._record_rejection(
                    command, rejection.message, rejection.type, rejection.details
                )
            return TransferOutcome(
                command.transfer_id,
                "REJECTED",
                position,
                rejection.message,
                rejection.type,
                dict(rejection.details) or None,
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

    async def _record_rejection(
        self,
        command: TransferMoney,
        reason: str,
        error_type: str,
        details: dict[str, str] | None = None,
    ) -> int:
        return await self._execute(
            TransferActivities.reject_transfer,
            RejectTransfer(command, reason, error_type, dict(details or {}) or None),
            COMMAND_RETRY,
        )

    async def _execute(
        self,
        method: Callable[[Any, A], Coroutine[Any, Any, int]],
        argument: A,
        retry_policy: RetryPolicy,
        summary: str | None = None,
    ) -> int:
        """Run one step or compensation: a local activity, or as histories from before did.

        A local activity that fails raises its cause itself; it is raised here as an activity's
        failure is, an ActivityError with that cause, which is what the saga helper handles.
        """
        if not self._local:
            return await workflow.execute_activity_method(
                method,
                argument,
                start_to_close_timeout=COMMAND_TIMEOUT,
                retry_policy=retry_policy,
                summary=summary,
            )
        try:
            return await workflow.execute_local_activity_method(
                method,
                argument,
                start_to_close_timeout=COMMAND_TIMEOUT,
                retry_policy=retry_policy,
                summary=summary,
            )
        except ActivityError:
            raise
        except FailureError as failure:
            raise ActivityError(
                str(failure),
                scheduled_event_id=0,
                started_event_id=0,
                identity="",
                activity_type=method.__name__,
                activity_id="",
                retry_state=None,
            ) from failure

    @workflow.query
    def state(self) -> SagaState:
        """The saga's status, current step, completed steps, compensations and error."""
        return self._saga.state

    @workflow.update
    async def outcome(self) -> TransferOutcome:
        """How the transfer ended, once it has.

        The API starts the saga with this update (update-with-start), so one call starts the
        transfer and answers with its end, which arrives with the workflow task that ends it.
        A cancelled transfer has no outcome: the update fails and the caller reads the
        workflow's result instead.
        """
        await workflow.wait_condition(lambda: self._ended)
        if self._outcome is None:
            raise ApplicationError("the transfer ended without an outcome", type=NO_OUTCOME)
        return self._outcome

    @workflow.update
    def retry(self) -> SagaState:
        """An operator's retry of a saga parked as NEEDS_ATTENTION."""
        return self._saga.request_retry()

    @retry.validator
    def validate_retry(self) -> None:
        self._saga.validate_retry()


def _started_with(attributes: Sequence[SearchAttributeUpdate[Any]]) -> bool:
    """Whether the workflow started with every one of these search attributes already set."""
    present = workflow.info().typed_search_attributes
    return all(present.get(update.key) == update.value for update in attributes)
