"""The transferMoney mutation: one TransferSaga per transfer id."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import strawberry
from strawberry.types import Info

from adapters.event_store import PostgresEventStore
from api.access import may_use_account, sees_transfer
from api.consistency import read_after
from api.context import Context
from api.dispatch import command_failed, idempotency_key, send
from api.errors import AccountNotFoundPayload
from api.rejections import invalid_input, rejection_payload
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
from domain.transfers import TransferMoney
from projections.transfers import get_transfer
from workflows.command_outcomes import Failure, Rejection
from workflows.transfers import SAGA_TYPE as TRANSFER_SAGA
from workflows.transfers import TransferOutcome, TransferSaga, transfer_workflow_id


class NotTheCallers(Exception):
    """The transfer behind a reused transferId is another customer's: it is not shown."""


class ReusedTransferId(Exception):
    """The transferId names a transfer of other accounts or another amount: the request is
    not a retry of it, and answering with that transfer's outcome would report a payment
    that never happened."""


def _requested(command: TransferMoney) -> tuple[str, str, Decimal]:
    return command.from_account_id, command.to_account_id, command.amount


async def _recorded_request(ctx: Context, transfer_id: str) -> tuple[str, str, Decimal] | None:
    """What the transfer's first event says was asked for, from the event store; None if
    the transfer was never recorded (it was refused before its first step)."""
    store = PostgresEventStore(ctx.services.engine)
    first = await store.read_stream(transfer_id, from_version=1, limit=1)
    if not first or first[0].type != "TransferRequested":
        return None
    data = first[0].data
    return data["from_account_id"], data["to_account_id"], Decimal(data["amount"])


async def _transfer(
    ctx: Context, command: TransferMoney, position: int, outcome: TransferOutcome | None = None
) -> Transfer:
    """The transfer from its read model once it includes `position`, else as far as known."""
    view = await read_after(
        ctx, "transfers", position, lambda conn: get_transfer(conn, command.transfer_id)
    )
    if view is not None:
        if not await sees_transfer(ctx, view):
            raise NotTheCallers(command.from_account_id)
        if (view.from_account_id, view.to_account_id, view.amount) != _requested(command):
            raise ReusedTransferId(command.transfer_id)
        return Transfer.from_view(view)
    if outcome is not None:
        # The read model is behind: the event store says which transfer the saga ran.
        recorded = await _recorded_request(ctx, command.transfer_id)
        if recorded is not None and recorded != _requested(command):
            raise ReusedTransferId(command.transfer_id)
    return Transfer(
        id=strawberry.ID(command.transfer_id),
        from_account_id=strawberry.ID(command.from_account_id),
        to_account_id=strawberry.ID(command.to_account_id),
        amount=command.amount,
        status=TransferStatus.REQUESTED if outcome is None else TransferStatus(outcome.status),
        reason=None if outcome is None else outcome.reason,
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
        except ReusedTransferId:
            reused = InvalidInput("transferId", "was already used by another transfer")
            return invalid_input(reused)


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
    rejection = Rejection(outcome.error_type or "Rejected", outcome.reason or "transfer rejected")
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
