"""Finding a saga's workflow and reading or retrying it through Temporal."""

from __future__ import annotations

import asyncio
import contextlib

import strawberry
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.access import reason_shown, refusal_shown
from api.context import Context
from api.sagas.types import Saga
from domain.refusals import Refusal
from workflows.saga import SagaState
from workflows.transfers import TransferOutcome, TransferSaga, transfer_workflow_id


class NoSuchSaga(LookupError):
    """No saga workflow has this id."""


class SagaNotWaiting(RuntimeError):
    """The saga is not parked for an operator's retry (or has ended)."""


def workflow_id_of(saga_id: str) -> str:
    """A saga's workflow id; clients may pass the transfer id or the workflow id itself."""
    return saga_id if saga_id.startswith("transfer/") else transfer_workflow_id(saga_id)


def transfer_id_of(saga_id: str) -> str:
    """The transfer (and stream) id behind a saga id."""
    return saga_id.removeprefix("transfer/")


def _handle(ctx: Context, saga_id: str) -> WorkflowHandle[TransferSaga, TransferOutcome]:
    return ctx.services.temporal.get_workflow_handle_for(TransferSaga.run, workflow_id_of(saga_id))


async def read_saga(ctx: Context, saga_id: str) -> Saga:
    """The saga's state from its workflow's query."""
    handle = _handle(ctx, saga_id)
    try:
        state = await handle.query(TransferSaga.state)
    except RPCError as error:
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise NoSuchSaga(saga_id) from None
        raise
    return await _saga(ctx, handle.id, state)


async def wait_for_saga_end(ctx: Context, saga_id: str) -> None:
    """Wait (bounded by the command timeout) until the saga's workflow has closed."""
    with contextlib.suppress(TimeoutError, WorkflowFailureError, RPCError):
        await asyncio.wait_for(
            _handle(ctx, saga_id).result(), ctx.services.settings.command_timeout_seconds
        )


async def retry_saga(ctx: Context, saga_id: str) -> Saga:
    """Ask a parked saga to run its owed compensations again."""
    handle = _handle(ctx, saga_id)
    try:
        state = await handle.execute_update(TransferSaga.retry)
    except WorkflowUpdateFailedError as error:
        raise SagaNotWaiting(saga_id) from error
    except RPCError as error:
        if error.status == RPCStatusCode.FAILED_PRECONDITION:
            raise SagaNotWaiting(saga_id) from error
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        # A saga that has ended answers updates with NOT_FOUND too.
        await read_saga(ctx, saga_id)
        raise SagaNotWaiting(saga_id) from error
    return await _saga(ctx, handle.id, state)


async def _saga(ctx: Context, workflow_id: str, state: SagaState) -> Saga:
    return Saga(
        id=strawberry.ID(workflow_id),
        type=state.saga_type,
        status=state.status.value,
        current_step=state.current_step,
        completed_steps=state.completed_steps,
        compensations=state.compensations,
        error=await _error_shown(ctx, state),
        started_at=state.started_at,
        closed_at=state.closed_at,
        temporal_ui_url=temporal_ui_url(ctx, workflow_id),
    )


async def _error_shown(ctx: Context, state: SagaState) -> str | None:
    """The saga's error as the caller may read it: "<step>: <reason>", the reason shown as
    a transfer's is (api/access.py)."""
    refusal = Refusal.from_facts(state.error_details)
    if refusal is None or state.error is None:
        return await reason_shown(ctx, state.error)
    # The saga writes a rejected step's error as "<step>: <the rejection's message>".
    step, _, _ = state.error.partition(": ")
    return f"{step}: {await refusal_shown(ctx, refusal)}"


def temporal_ui_url(ctx: Context, workflow_id: str) -> str | None:
    """The saga's page in the Temporal UI for an operator; None for anyone else.

    The Temporal UI is the operators' tool at an internal address: a client back end (which
    would pass it on) or a customer has no use for the link, and it names that address.
    """
    if not ctx.caller.is_operator:
        return None
    return ctx.services.settings.temporal_workflow_url(workflow_id)
