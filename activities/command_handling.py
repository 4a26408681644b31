"""What every command activity shares: results, business rejections, event identity."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid5

from temporalio import activity
from temporalio.exceptions import ApplicationError

from adapters.correlation import correlated
from adapters.outages import is_outage, summary
from adapters.tracing import with_traceparent
from domain.aggregate import Aggregate
from domain.errors import DomainError
from domain.events import JsonDict
from domain.repository import EventIds, Repository, retry_on_conflict

log = logging.getLogger(__name__)

EVENT_NAMESPACE = UUID("8f0c6a52-3f1e-4a55-9a39-5d3b7c1e2a10")


@dataclass(frozen=True)
class CommandResult:
    """A command's effect: the aggregate it changed, its new version, the last position."""

    aggregate_id: str
    version: int
    position: int


COMMAND_FAILED = "CommandFailed"
"""The failure type of a command that failed for a reason that is neither a rule nor an outage."""

FAILED_ATTEMPTS = 5
"""How often such a command is tried before it fails for good (an outage never counts down):
the default of SAGALINE_COMMAND_ATTEMPTS, which the worker passes to its activities."""


CLIENT_MESSAGE = "the command could not be carried out"
"""What a client is told of a command that failed for a reason other than a rejection."""


Rejects = Collection[type[DomainError]]
"""The business rejections an activity may answer with: what its mutation has answers for."""


@contextmanager
def rejections(
    command_id: str, expected: Rejects, failed_attempts: int = FAILED_ATTEMPTS
) -> Iterator[None]:
    """Fail the activity with what its workflow should know of an error raised inside.

    A business rejection the activity `expected` fails it for good: the failure's type is the
    error's code; its message and its first detail are the error's message and details, all
    that a workflow passes on and a client is answered with (a second one names the saga step
    that refused, for an activity that runs several). A rejection it did not expect
    has no answer a client knows: it fails for good as COMMAND_FAILED (see below). An outage
    (database or broker unreachable) is raised as it is and retried until it ends. Anything
    else (a constraint violation, bad data, a bug) would fail the same way every time: it
    fails as COMMAND_FAILED, retried until the activity's `failed_attempts`-th attempt and
    then for good, its details naming the command (the correlation id the worker's log and the
    client's answer share).
    """
    with correlated(command_id):
        try:
            yield
        except DomainError as error:
            if type(error) in expected:
                # A second detail names the step that refused, when the activity runs several.
                step = () if error.step is None else ({"step": error.step},)
                raise ApplicationError(
                    error.message, error.details, *step, type=error.code, non_retryable=True
                ) from None
            log.error(
                "command %s met a rejection its activity does not name: %s", command_id, error
            )
            raise ApplicationError(
                f"{CLIENT_MESSAGE}: unexpected rejection {summary(error)}",
                {"correlation_id": command_id},
                type=COMMAND_FAILED,
                non_retryable=True,
            ) from error
        except ApplicationError:
            raise
        except Exception as error:
            if is_outage(error):
                raise
            attempt = activity.info().attempt
            final = attempt >= failed_attempts
            log.error(
                "command %s failed on attempt %d of %d%s",
                command_id,
                attempt,
                failed_attempts,
                ", for good" if final else "",
                exc_info=error,
            )
            # The cause's first line is for operators (the saga's error, the Temporal UI); the
            # API answers clients with CLIENT_MESSAGE and the correlation id only.
            raise ApplicationError(
                f"{CLIENT_MESSAGE}: {summary(error)}",
                {"correlation_id": command_id},
                type=COMMAND_FAILED,
                non_retryable=final,
            ) from error


def event_ids() -> EventIds:
    """Event ids derived from the workflow and the activity, stable across retries."""
    info = activity.info()
    prefix = f"{info.workflow_id}/{info.activity_id}"
    return lambda index: uuid5(EVENT_NAMESPACE, f"{prefix}/{index}")


def event_metadata(command_id: str, actor: str) -> JsonDict:
    """Who and what caused the events an activity appends, and the trace they belong to."""
    info = activity.info()
    return with_traceparent(
        {
            "command_id": command_id,
            "correlation_id": command_id,
            "causation_id": command_id,
            "workflow_id": info.workflow_id,
            "actor": actor,
        }
    )


Load = tuple[type[Aggregate], str]


async def decide_and_save(
    repository: Repository,
    command_id: str,
    actor: str,
    loads: Sequence[Load],
    decide: Callable[..., Any],
    expected: Rejects,
    failed_attempts: int = FAILED_ATTEMPTS,
) -> CommandResult:
    """Load the aggregates, let the domain decide, save them atomically.

    A concurrent change to any of the streams makes the save fail its expected version: the
    aggregates are then loaded again and the domain decides again. A business rejection
    becomes a non-retryable failure named after the rule. The result names the first
    aggregate; its position is that of the last event appended (0 if nothing was owed).
    """

    async def attempt(ids: EventIds, metadata: JsonDict) -> CommandResult:
        aggregates, result = await repository.change(loads, decide, ids, metadata)
        first = aggregates[0]
        return CommandResult(first.id, first.version, result.position)

    return await with_retries(command_id, actor, attempt, expected, failed_attempts)


async def with_retries(
    command_id: str,
    actor: str,
    attempt: Callable[[EventIds, JsonDict], Awaitable[CommandResult]],
    expected: Rejects,
    failed_attempts: int = FAILED_ATTEMPTS,
) -> CommandResult:
    """Run a load-decide-save attempt until no stream moved under it; rejections fail it.

    Every attempt gets the same event ids (derived from the workflow and activity), so an
    attempt whose commit was lost and a later one can never both append.
    """
    ids = event_ids()
    metadata = event_metadata(command_id, actor)
    with rejections(command_id, expected, failed_attempts):
        return await retry_on_conflict(lambda: attempt(ids, metadata), attempts=20)
