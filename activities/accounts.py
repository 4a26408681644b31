"""Account command activities: load, let the domain decide, append in one transaction."""

from __future__ import annotations

from temporalio import activity

from activities.command_handling import CommandResult, decide_and_save
from domain.accounts import (
    Account,
    CloseAccount,
    DepositMoney,
    OpenAccount,
    WithdrawMoney,
)
from domain.repository import Repository
from domain.users import User


class AccountActivities:
    """Activities on the Account aggregate."""

    def __init__(self, repository: Repository) -> None:
        self._repository = repository

    @activity.defn
    async def open_account(self, command: OpenAccount) -> CommandResult:
        """Open the account if its owner exists and is not locked."""

        def decide(account: Account, owner: User) -> None:
            owner.require_active()
            account.open(command.owner_id, command.currency, command.daily_limit)

        return await decide_and_save(
            self._repository,
            command.command_id,
            command.actor,
            [(Account, command.account_id), (User, command.owner_id)],
            decide,
        )

    @activity.defn
    async def deposit_money(self, command: DepositMoney) -> CommandResult:
        """Add money to the account."""
        return await decide_and_save(
            self._repository,
            command.command_id,
            command.actor,
            [(Account, command.account_id)],
            lambda account: account.deposit(command.amount),
        )

    @activity.defn
    async def withdraw_money(self, command: WithdrawMoney) -> CommandResult:
        """Take money from the account."""
        return await decide_and_save(
            self._repository,
            command.command_id,
            command.actor,
            [(Account, command.account_id)],
            lambda account: account.withdraw(command.amount),
        )

    @activity.defn
    async def close_account(self, command: CloseAccount) -> CommandResult:
        """Close the account once it is empty."""
        return await decide_and_save(
            self._repository,
            command.command_id,
            command.actor,
            [(Account, command.account_id)],
            lambda account: account.close(),
        )
