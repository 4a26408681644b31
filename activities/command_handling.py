"""What every command activity shares: results, business rejections, event identity."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid5

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.aggregate import Aggregate
from domain.errors import DomainError
from domain.events import JsonDict
from domain.repository import EventIds, Repository, retry_on_conflict

EVENT_NAMESPACE = UUID("8f0c6a52-3f1e-4a55-9a39-5d3b7c1e2a10")


@dataclass(frozen=True)
class CommandResult:
    """A command's effect: the aggregate it changed, its new version, the last position."""

    aggregate_id: str
    version: int
    position: int


@contextmanager
def rejections() -> Iterator[None]:
    """Fail the activity, for good, with any business rejection raised inside.

    The failure's type is the error's code; its message and its one detail are the error's
    message and details: all that a workflow passes on and a client is answered with.
    """
    try:
        yield
    except DomainError as error:
        raise ApplicationError(
            error.message, error.details, type=error.code, non_retryable=True
        ) from None


def event_ids() -> EventIds:
    """Event ids derived from the workflow and the activity, stable across retries."""
    info = activity.info()
    prefix = f"{info.workflow_id}/{info.activity_id}"
    return lambda index: uuid5(EVENT_NAMESPACE, f"{prefix}/{index}")


def event_metadata(command_id: str, actor: str) -> JsonDict:
    """Who and what caused the events an activity appends."""
    info = activity.info()
    return {
        "command_id": command_id,
        "correlation_id": command_id,
        "causation_id": command_id,
        "workflow_id": info.workflow_id,
        "actor": actor,
    }


Load = tuple[type[Aggregate], str]


async def decide_and_save(
    repository: Repository,
    command_id: str,
    actor: str,
    loads: Sequence[Load],
    decide: Callable[..., Any],
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

    return await with_retries(command_id, actor, attempt)


async def with_retries(
    command_id: str,
    actor: str,
    attempt: Callable[[EventIds, JsonDict], Awaitable[CommandResult]],
) -> CommandResult:
    """Run a load-decide-save attempt until no stream moved under it; rejections fail it.

    Every attempt gets the same event ids (derived from the workflow and activity), so an
    attempt whose commit was lost and a later one can never both append.
    """
    ids = event_ids()
    metadata = event_metadata(command_id, actor)
    with rejections():
        return await retry_on_conflict(lambda: attempt(ids, metadata), attempts=20)
