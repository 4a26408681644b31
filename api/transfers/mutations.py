"""The transferMoney mutation: one TransferSaga per transfer id."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry.types import Info

from api.access import (
    may_use_account,
    names_another_stream,
    reason_shown,
    sees_transfer,
    sees_transfer_between,
)
from api.consistency import wait_for_read_model
from api.context import Context
from api.dispatch import command_failed, idempotency_key, send
from api.errors import AccountNotFoundPayload
from api.rejections import invalid_input, rejection_payload
from api.retries import CommandIdReused, asks_the_same
from api.transfers.types import (
    Transfer,
    TransferCompletedPayload,
    TransferMoneyInput,
    TransferMoneyPayload,
    TransferPending,
    TransferRejectedPayload,
    TransferStatus,
)
from domain.errors import InvalidInput
from domain.money import check_amount
from domain.transfers import TransferMoney, transfer_id_in_use
from projections.transfers import read_transfer
from workflows.command_outcomes import Failure, Rejection
from workflows.transfers import SAGA_TYPE as TRANSFER_SAGA
from workflows.transfers import TransferOutcome, TransferSaga, transfer_workflow_id


class NotTheCallers(Exception):
    """The transfer behind a reused transferId is another customer's: it is not shown."""


async def _transfer(
    ctx: Context, command: TransferMoney, position: int, outcome: TransferOutcome | None = None
) -> Transfer:
    """The transfer from its read model once it includes `position`, else as far as known.

    A transfer read under the id that is not the command's (the id reused for another, and
    the saga's history out of reach in time) raises CommandIdReused: it is not shown.
    """
    await wait_for_read_model(ctx, "transfers", position)
    async with ctx.services.reads.connection() as conn:
        view = await read_transfer(conn, command.transfer_id)
    if view is not None:
        first = {
            "transfer_id": view.id,
            "from_account_id": view.from_account_id,
            "to_account_id": view.to_account_id,
            "amount": str(view.amount),
        }
        if not asks_the_same(first, command):
            raise CommandIdReused(first)
        if not await sees_transfer(ctx, view):
            raise NotTheCallers(command.from_account_id)
        return Transfer.from_view(view)
    return Transfer(
        id=strawberry.ID(command.transfer_id),
        from_account_id=strawberry.ID(command.from_account_id),
        to_account_id=strawberry.ID(command.to_account_id),
        amount=command.amount,
        status=TransferStatus.REQUESTED if outcome is None else TransferStatus(outcome.status),
        stored_reason=None if outcome is None else outcome.reason,
        stored_reason_details=None if outcome is None else outcome.details,
        steps=[],
        created_at=None,
        updated_at=None,
    )


@strawberry.type
class TransferMutations:
    @strawberry.mutation(
        description="Move money between accounts as a saga; transferId makes retries idempotent."
    )
    async def transfer_money(
        self, info: Info[Context, None], input: TransferMoneyInput
    ) -> TransferMoneyPayload:
        try:
            return await _send_transfer(info.context, input)
        except NotTheCallers:
            return AccountNotFoundPayload(message=f"account {input.from_account_id} not found")
        except CommandIdReused as reused:
            # The id is another transfer's: one the caller may not see is not shown even by
            # saying so (as NotTheCallers).
            first = reused.first
            source, destination = first.get("from_account_id"), first.get("to_account_id")
            if not await sees_transfer_between(info.context, str(source), str(destination)):
                return AccountNotFoundPayload(message=f"account {input.from_account_id} not found")
            taken = InvalidInput("transferId", "was already used by another transfer")
            return invalid_input(taken)


async def _send_transfer(ctx: Context, input: TransferMoneyInput) -> TransferMoneyPayload:
    """Start the transfer's saga once per transferId and answer with how it ended."""
    if not await may_use_account(ctx, str(input.from_account_id)):
        return AccountNotFoundPayload(message=f"account {input.from_account_id} not found")
    try:
        transfer_id = idempotency_key(input.transfer_id)
        amount = check_amount(input.amount)
        if input.from_account_id == input.to_account_id:
            raise InvalidInput("toAccountId", "must differ from fromAccountId")
    except InvalidInput as error:
        if error.field == "commandId":
            error = InvalidInput("transferId", error.message.split(": ", 1)[-1])
        return invalid_input(error)
    # The transfer's stream is named by its id: an id naming another aggregate's stream
    # (someone's account, a user) is bad input, answered before any saga starts. A stream
    # that is empty or begins with TransferRequested (a retry) goes on as before; one made
    # between this read and the saga's first step is refused by that step the same way.
    if await names_another_stream(ctx, transfer_id):
        return invalid_input(transfer_id_in_use())
    command = TransferMoney(
        transfer_id,
        str(input.from_account_id),
        str(input.to_account_id),
        amount,
        datetime.now(UTC).date().isoformat(),
        ctx.actor,
        ctx.services.settings.compensation_attempts,
    )
    outcome = await send(
        ctx,
        TransferSaga.run,
        command,
        workflow_id=transfer_workflow_id(transfer_id),
        command_id=transfer_id,
        aggregate_ids=[transfer_id, command.from_account_id, command.to_account_id],
        summary=f"Transfer {amount} from {command.from_account_id} to {command.to_account_id}",
        result_type=TransferOutcome,
        saga_type=TRANSFER_SAGA,
        outcome_update=TransferSaga.outcome,
    )
    if outcome is None:
        transfer = await _transfer(ctx, command, 0)
        return TransferPending(transfer=transfer, message="the transfer is still running")
    if outcome.status == "FAILED":
        failure = Failure(outcome.reason or "the transfer failed", transfer_id)
        return command_failed(transfer_workflow_id(transfer_id), failure)
    transfer = await _transfer(ctx, command, outcome.position, outcome)
    if outcome.status == "COMPLETED":
        return TransferCompletedPayload(transfer=transfer, position=str(outcome.position))
    reason = await reason_shown(ctx, outcome.reason, outcome.details) or "transfer rejected"
    rejection = Rejection(outcome.error_type or "Rejected", reason)
    return transfer_rejection(rejection, transfer, str(outcome.position))


def transfer_rejection(
    rejection: Rejection, transfer: Transfer, position: str
) -> TransferMoneyPayload:
    """A rejected transfer's answer: its union's member, else TransferRejected naming why."""
    return rejection_payload(  # type: ignore[no-any-return]
        rejection,
        TransferMoneyPayload,
        otherwise=lambda rejected: TransferRejectedPayload(
            message=rejected.message,
            reason=rejected.type,
            transfer=transfer,
            position=position,
        ),
    )
