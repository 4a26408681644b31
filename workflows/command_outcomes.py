"""Running a command activity from a workflow and turning rejections into outcomes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.command_handling import COMMAND_FAILED, CommandResult
    from domain.rejections import REJECTION_CODES

C = TypeVar("C")

# No attempt limit: an outage (database, broker) delays a command, it never fails it. A
# business rejection is an answer, not an outage: it is never retried. Any other failure is
# retried by the activity's own count (the worker's SAGALINE_COMMAND_ATTEMPTS, passed to its
# activities) and then fails as COMMAND_FAILED, for good. The workflow never reads that count.
COMMAND_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=list(REJECTION_CODES),
)
COMMAND_TIMEOUT = timedelta(seconds=10)
FAILED_COMMANDS_ANSWER = "failed-commands-answer"


@dataclass(frozen=True)
class Rejection:
    """A business rule said no: the error's code, its client-safe message and its details."""

    type: str
    message: str
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """A command failed for a reason that is neither a rule nor an outage; the log has more."""

    message: str
    correlation_id: str


@dataclass(frozen=True)
class CommandOutcome:
    """Exactly one of: the command's result, why it was rejected, or why it failed."""

    result: CommandResult | None = None
    rejection: Rejection | None = None
    failure: Failure | None = None


async def run_command(
    activity_method: Callable[[Any, C], Awaitable[CommandResult]], command: C
) -> CommandOutcome:
    """Execute one command activity; a rejection or a failure becomes part of the outcome."""
    try:
        result = await workflow.execute_activity_method(
            activity_method,
            command,
            start_to_close_timeout=COMMAND_TIMEOUT,
            retry_policy=COMMAND_RETRY,
        )
    except ActivityError as error:
        rejected = rejection_of(error)
        if rejected is not None:
            return CommandOutcome(rejection=rejected)
        failed = failure_of(error)
        # Histories from before failed their workflow with the activity's failure.
        if failed is None or not workflow.patched(FAILED_COMMANDS_ANSWER):
            raise
        return CommandOutcome(failure=failed)
    return CommandOutcome(result=result)


def rejection_of(error: ActivityError) -> Rejection | None:
    """The business rejection an activity failed with, or None for any other failure."""
    cause = error.cause
    if not (isinstance(cause, ApplicationError) and cause.type in REJECTION_CODES):
        return None
    details = cause.details[0] if cause.details else {}
    # Histories from before rejections carried their details hold {"field": None}.
    known = {k: v for k, v in details.items() if isinstance(v, str)}
    return Rejection(cause.type, cause.message, known)


def refusing_step(error: ActivityError) -> str | None:
    """The saga step a rejection names, when its activity ran several steps (else None)."""
    cause = error.cause
    if not (isinstance(cause, ApplicationError) and len(cause.details) > 1):
        return None
    named = cause.details[1]
    step = named.get("step") if isinstance(named, dict) else None
    return step if isinstance(step, str) else None


def failure_of(error: ActivityError) -> Failure | None:
    """The failure an activity gave up with (COMMAND_FAILED), or None for any other."""
    cause = error.cause
    if not (isinstance(cause, ApplicationError) and cause.type == COMMAND_FAILED):
        return None
    details = cause.details[0] if cause.details else {}
    correlation_id = details.get("correlation_id") if isinstance(details, dict) else None
    if not isinstance(correlation_id, str):
        correlation_id = workflow.info().workflow_id
    return Failure(cause.message, correlation_id)
