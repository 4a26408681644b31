"""Sending a command: start its workflow once per command id and wait for the outcome."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, TypedDict, TypeVar

from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from activities.command_handling import CLIENT_MESSAGE, CommandResult
from adapters.correlation import correlated
from api.context import Context
from api.errors import CommandFailed, CommandPending
from api.rejections import command_id_reused, rejection_payload
from api.retries import CommandIdReused, ensure_retry
from domain.errors import InvalidInput
from workflows import search_attributes
from workflows.command_outcomes import CommandOutcome, Failure

log = logging.getLogger(__name__)

C = TypeVar("C")
R = TypeVar("R")
_COMMAND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_AGGREGATE_NAMESPACE = uuid.UUID("0b8e8f2c-6d55-4c3e-9f64-0f7f2d1b9a41")


def command_id_or_new(ctx: Context, command_id: str | None) -> str:
    """The client's idempotency key, checked, or a fresh one; a customer's keys are its own.

    A customer's key is scoped by its user, so a key another customer used starts a command
    of the caller's own instead of joining (and answering with) theirs.
    """
    checked = idempotency_key(command_id)
    customer = ctx.caller.customer
    return checked if customer is None else f"{customer}:{checked}"


def idempotency_key(command_id: str | None) -> str:
    """The client's idempotency key as it was sent, checked, or a fresh one."""
    if command_id is None:
        return str(uuid.uuid4())
    if not _COMMAND_ID.match(command_id):
        raise InvalidInput(
            "commandId", "must be 1-128 characters of letters, digits, '.', '_', ':' or '-'"
        )
    return command_id


def aggregate_id_for(kind: str, command_id: str) -> str:
    """A new aggregate's id, derived from the command that creates it (so retries agree)."""
    return str(uuid.uuid5(_AGGREGATE_NAMESPACE, f"{kind}/{command_id}"))


SETTLED_START_SECONDS = 1.0
STARTED_CHECK_SECONDS = 2.0


async def send(
    ctx: Context,
    run: Callable[[Any, C], Awaitable[R]],
    command: C,
    *,
    workflow_id: str,
    command_id: str,
    aggregate_ids: Sequence[str],
    summary: str,
    result_type: type[R] = CommandOutcome,  # type: ignore[assignment]
    saga_type: str | None = None,
    outcome_update: UpdateMethodMultiParam[[Any], R] | None = None,
) -> R | None:
    """Run the command's workflow (or join the one already started); None if still running.

    Joining needs the same request: a command that is not a retry of the one that started
    the workflow raises CommandIdReused (api/retries.py).

    With `outcome_update` (an update of the workflow that answers with its result once it
    has one) the workflow is started with that update in one call, which returns when the
    update completes: in the workflow task that ends the workflow, without a second call
    waiting on its history. Only the call that starts the workflow sends the update: one
    that finds it started (the command sent again, while it runs or after it ended) waits on
    its result instead, so a client that keeps asking about a long-running or parked saga
    does not pile updates up in its history. A workflow that does not answer the update is
    waited on in the same way.
    """
    services = ctx.services
    timeout = services.settings.command_timeout_seconds
    deadline = asyncio.get_running_loop().time() + timeout
    handle: WorkflowHandle[Any, R]
    with correlated(command_id, workflow_id):
        if outcome_update is not None:
            options = start_options(
                ctx,
                workflow_id,
                command_id,
                aggregate_ids,
                summary,
                saga_type,
            )
            start = WithStartWorkflowOperation(run, command, **options)
            try:
                outcome: R = await asyncio.wait_for(
                    services.temporal.execute_update_with_start_workflow(
                        outcome_update, start_workflow_operation=start
                    ),
                    timeout=timeout,
                )
                return outcome
            except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
                # wait_for cancels the call at the bound, which the SDK raises as the
                # latter; a cancellation of this request itself arrives as CancelledError.
                # Still running only if Temporal took the start: a call that kept retrying
                # an unreachable server until the bound started nothing.
                if not await _started(ctx, workflow_id):
                    raise RPCError(
                        "Temporal did not take the workflow's start within the command timeout",
                        RPCStatusCode.UNAVAILABLE,
                        b"",
                    ) from None
                return None
            except WorkflowAlreadyStartedError:
                joined = True
            except WorkflowUpdateFailedError:
                joined = False
            finally:
                await _settled(start)
            handle = services.temporal.get_workflow_handle(workflow_id, result_type=result_type)
            try:
                if joined:
                    await _within(deadline, ensure_retry(services.temporal, workflow_id, command))
                return await _within(deadline, handle.result())
            except TimeoutError:
                return None
        try:
            handle = await _start(
                ctx,
                run,
                command,
                workflow_id,
                command_id,
                aggregate_ids,
                summary,
                result_type,
                saga_type,
                deadline,
            )
            return await _within(deadline, handle.result())
        except TimeoutError:
            return None


async def _within(deadline: float, waited: Awaitable[R]) -> R:
    """What `waited` answers, or TimeoutError once the loop's clock passes `deadline`."""
    return await asyncio.wait_for(waited, deadline - asyncio.get_running_loop().time())


async def start(
    ctx: Context,
    run: Callable[[Any, C], Awaitable[Any]],
    command: C,
    *,
    workflow_id: str,
    command_id: str,
    aggregate_ids: Sequence[str],
    summary: str,
) -> None:
    """Start the command's workflow (Temporal then runs it to its end) without waiting for it."""
    timeout = ctx.services.settings.command_timeout_seconds
    deadline = asyncio.get_running_loop().time() + timeout
    with correlated(command_id, workflow_id):
        await _start(
            ctx,
            run,
            command,
            workflow_id,
            command_id,
            aggregate_ids,
            summary,
            CommandOutcome,
            None,
            deadline,
        )


async def _start(
    ctx: Context,
    run: Callable[[Any, C], Awaitable[R]],
    command: C,
    workflow_id: str,
    command_id: str,
    aggregate_ids: Sequence[str],
    summary: str,
    result_type: type[R],
    saga_type: str | None,
    deadline: float,
) -> WorkflowHandle[Any, R]:
    """Start the workflow, or join the one started under its id if the command is a retry
    of the one it started with (checked by `deadline`: TimeoutError after it)."""
    services = ctx.services
    options = start_options(
        ctx,
        workflow_id,
        command_id,
        aggregate_ids,
        summary,
        saga_type,
    )
    try:
        return await services.temporal.start_workflow(run, command, **options)
    except WorkflowAlreadyStartedError:
        await _within(deadline, ensure_retry(services.temporal, workflow_id, command))
        return services.temporal.get_workflow_handle(workflow_id, result_type=result_type)


class StartOptions(TypedDict):
    """How a command's workflow is started, alone or with its outcome update."""

    id: str
    task_queue: str
    id_conflict_policy: WorkflowIDConflictPolicy
    id_reuse_policy: WorkflowIDReusePolicy
    search_attributes: TypedSearchAttributes
    static_summary: str
    task_timeout: timedelta


def start_options(
    ctx: Context,
    workflow_id: str,
    command_id: str,
    aggregate_ids: Sequence[str],
    summary: str,
    saga_type: str | None,
) -> StartOptions:
    """The options of a command's workflow start: once per id (one running or closed under
    it is not started again, and the start says so, for `ensure_retry`), on the API's task
    queue, with the search attributes operators find it by, and the workflow task timeout
    of SAGALINE_WORKFLOW_TASK_TIMEOUT_SECONDS (a held saga step is renewed at 80 % of it)."""
    settings = ctx.services.settings
    return StartOptions(
        id=workflow_id,
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=search_attributes.at_start(command_id, aggregate_ids, saga_type),
        static_summary=summary,
        task_timeout=timedelta(seconds=settings.workflow_task_timeout_seconds),
    )


async def _started(ctx: Context, workflow_id: str) -> bool:
    """Whether Temporal knows the workflow, asked within STARTED_CHECK_SECONDS.

    An update-with-start call learns of its start only when the whole call answers, so one
    cut off by the bound cannot tell a saga still running from a start never taken.
    """
    handle = ctx.services.temporal.get_workflow_handle(workflow_id)
    try:
        await asyncio.wait_for(
            handle.describe(rpc_timeout=timedelta(seconds=STARTED_CHECK_SECONDS)),
            STARTED_CHECK_SECONDS,
        )
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return False
    except Exception:
        return False
    return True


async def _settled(start: WithStartWorkflowOperation[Any, Any]) -> None:
    """Take the start's outcome, which the SDK keeps in a future of its own: left unread, a
    failed start is logged at ERROR as a "Future exception was never retrieved" when it is
    collected. The SDK settles it before the call returns or raises; the bound is only for a
    call cancelled before it began."""
    try:
        await asyncio.wait_for(start.workflow_handle(), SETTLED_START_SECONDS)
    except asyncio.CancelledError:
        # A start cut off by the bound of `send` holds a CancelledError; only a
        # cancellation of this request itself goes on.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception:
        pass


async def execute(
    ctx: Context,
    run: Callable[[Any, Any], Awaitable[CommandOutcome]],
    command: Any,
    *,
    workflow_id: str,
    aggregate_ids: Sequence[str],
    summary: str,
    union: object,
    success: Callable[[CommandResult], Awaitable[object]],
) -> Any:
    """Send a command; answer with the member of the mutation's `union` it ended as.

    That is CommandPending while it runs, the type its rejection has, CommandFailed if it
    failed, what `success` makes of its result, or InvalidInput on `commandId` if the id
    was first used by a command asking for something else.
    """
    command_id: str = command.command_id
    try:
        outcome = await send(
            ctx,
            run,
            command,
            workflow_id=workflow_id,
            command_id=command_id,
            aggregate_ids=aggregate_ids,
            summary=summary,
        )
    except CommandIdReused:
        return command_id_reused()
    if outcome is None:
        return CommandPending(message="the command is still running", command_id=command_id)
    if outcome.rejection is not None:
        rejected = outcome.rejection
        unexpected = Failure(
            f"unexpected rejection {rejected.type}: {rejected.message}", command_id
        )
        return rejection_payload(rejected, union, lambda _: command_failed(workflow_id, unexpected))
    if outcome.failure is not None:
        return command_failed(workflow_id, outcome.failure)
    assert outcome.result is not None
    return await success(outcome.result)


def command_failed(workflow_id: str, failure: Failure) -> CommandFailed:
    """The answer to a command that failed; the log names its workflow for an operator."""
    log.error(
        "command failed (correlation id %s, workflow %s): %s",
        failure.correlation_id,
        workflow_id,
        failure.message,
    )
    return CommandFailed(message=CLIENT_MESSAGE, correlation_id=failure.correlation_id)
