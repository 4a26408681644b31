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
    from activities.command_handling import CommandResult
    from domain.rejections import REJECTION_CODES

C = TypeVar("C")

# No attempt limit: an outage (database, broker) delays a command, it never fails it. A
# business rejection is an answer, not an outage: it is never retried.
COMMAND_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=list(REJECTION_CODES),
)
COMMAND_TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True)
class Rejection:
    """A business rule said no: the error's code, its client-safe message and its details."""

    type: str
    message: str
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CommandOutcome:
    """Exactly one of: the command's result, or why it was rejected."""

    result: CommandResult | None = None
    rejection: Rejection | None = None


async def run_command(
    activity_method: Callable[[Any, C], Awaitable[CommandResult]], command: C
) -> CommandOutcome:
    """Execute one command activity; a business rejection becomes part of the outcome."""
    try:
        result = await workflow.execute_activity_method(
            activity_method,
            command,
            start_to_close_timeout=COMMAND_TIMEOUT,
            retry_policy=COMMAND_RETRY,
        )
    except ActivityError as error:
        rejected = rejection_of(error)
        if rejected is None:
            raise
        return CommandOutcome(rejection=rejected)
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
