"""Account mutations: validate, build the command, run it through its workflow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from strawberry.types import Info

from activities.command_handling import CommandResult
from api.access import may_use_account, sees_user
from api.accounts.types import (
    Account,
    AccountClosedPayload,
    AccountOpenedPayload,
    CloseAccountInput,
    CloseAccountPayload,
    DepositMoneyInput,
    DepositMoneyPayload,
    MoneyDepositedPayload,
    MoneyWithdrawnPayload,
    OpenAccountInput,
    OpenAccountPayload,
    WithdrawMoneyInput,
    WithdrawMoneyPayload,
)
from api.consistency import read_after, read_model_behind
from api.context import Context
from api.dispatch import aggregate_id_for, command_id_or_new, execute
from api.errors import AccountNotFoundPayload, UserNotFoundPayload
from api.rejections import invalid_input
from domain.accounts import CloseAccount, DepositMoney, OpenAccount, WithdrawMoney
from domain.errors import InvalidInput
from domain.money import check_amount, parse_currency
from projections.accounts import get_account
from workflows.accounts import (
    CloseAccountWorkflow,
    DepositMoneyWorkflow,
    OpenAccountWorkflow,
    WithdrawMoneyWorkflow,
    account_command_workflow_id,
)


async def _read_back(ctx: Context, account_id: str, result: CommandResult) -> Account | None:
    """The account as the read model has it once it includes the command's events; None if
    it did not get there within the bound."""
    view = await read_after(
        ctx, "accounts", result.position, lambda conn: get_account(conn, account_id)
    )
    if view is None or view.version < result.version:
        return None
    return Account.from_view(view)


async def _execute(
    ctx: Context,
    kind: str,
    workflow: Any,
    command: Any,
    account_id: str,
    summary: str,
    union: object,
    success: Callable[[Account, str], object],
) -> Any:
    """Run an account command's workflow; on success answer with the account, once read back."""

    async def succeeded(result: CommandResult) -> object:
        account = await _read_back(ctx, account_id, result)
        if account is None:
            return read_model_behind(command.command_id)
        return success(account, str(result.position))

    return await execute(
        ctx,
        workflow.run,
        command,
        workflow_id=account_command_workflow_id(kind, command.command_id),
        aggregate_ids=[account_id],
        summary=summary,
        union=union,
        success=succeeded,
    )


def not_found(account_id: str) -> AccountNotFoundPayload:
    """The answer to a customer naming an account that is not its own."""
    return AccountNotFoundPayload(message=f"account {account_id} not found")


@strawberry.type
class AccountMutations:
    @strawberry.mutation(description="Open an account for an active user.")
    async def open_account(
        self, info: Info[Context, None], input: OpenAccountInput
    ) -> OpenAccountPayload:
        ctx = info.context
        if not sees_user(ctx, str(input.owner_id)):
            return UserNotFoundPayload(message=f"user {input.owner_id} not found")
        try:
            command_id = command_id_or_new(ctx, input.command_id)
            currency = parse_currency(input.currency)
        except InvalidInput as error:
            return invalid_input(error)
        account_id = aggregate_id_for("account", command_id)
        command = OpenAccount(
            command_id, account_id, str(input.owner_id), currency, actor=ctx.actor
        )
        return await _execute(  # type: ignore[no-any-return]
            ctx,
            "open-account",
            OpenAccountWorkflow,
            command,
            account_id,
            f"Open {currency} account",
            OpenAccountPayload,
            lambda account, position: AccountOpenedPayload(account=account, position=position),
        )

    @strawberry.mutation(description="Put money into an open account.")
    async def deposit_money(
        self, info: Info[Context, None], input: DepositMoneyInput
    ) -> DepositMoneyPayload:
        ctx = info.context
        if not await may_use_account(ctx, str(input.account_id)):
            return not_found(str(input.account_id))
        try:
            command_id = command_id_or_new(ctx, input.command_id)
            amount = check_amount(input.amount)
        except InvalidInput as error:
            return invalid_input(error)
        account_id = str(input.account_id)
        command = DepositMoney(command_id, account_id, amount, ctx.actor)
        return await _execute(  # type: ignore[no-any-return]
            ctx,
            "deposit-money",
            DepositMoneyWorkflow,
            command,
            account_id,
            f"Deposit {amount}",
            DepositMoneyPayload,
            lambda account, position: MoneyDepositedPayload(account=account, position=position),
        )

    @strawberry.mutation(description="Take money out of an open account.")
    async def withdraw_money(
        self, info: Info[Context, None], input: WithdrawMoneyInput
    ) -> WithdrawMoneyPayload:
        ctx = info.context
        if not await may_use_account(ctx, str(input.account_id)):
            return not_found(str(input.account_id))
        try:
            command_id = command_id_or_new(ctx, input.command_id)
            amount = check_amount(input.amount)
        except InvalidInput as error:
            return invalid_input(error)
        account_id = str(input.account_id)
        command = WithdrawMoney(command_id, account_id, amount, ctx.actor)
        return await _execute(  # type: ignore[no-any-return]
            ctx,
            "withdraw-money",
            WithdrawMoneyWorkflow,
            command,
            account_id,
            f"Withdraw {amount}",
            WithdrawMoneyPayload,
            lambda account, position: MoneyWithdrawnPayload(account=account, position=position),
        )

    @strawberry.mutation(description="Close an account whose balance is zero.")
    async def close_account(
        self, info: Info[Context, None], input: CloseAccountInput
    ) -> CloseAccountPayload:
        ctx = info.context
        if not await may_use_account(ctx, str(input.account_id)):
            return not_found(str(input.account_id))
        try:
            command_id = command_id_or_new(ctx, input.command_id)
        except InvalidInput as error:
            return invalid_input(error)
        account_id = str(input.account_id)
        command = CloseAccount(command_id, account_id, ctx.actor)
        return await _execute(  # type: ignore[no-any-return]
            ctx,
            "close-account",
            CloseAccountWorkflow,
            command,
            account_id,
            "Close account",
            CloseAccountPayload,
            lambda account, position: AccountClosedPayload(
                message="account closed", account=account, position=position
            ),
        )
