"""Account command activities: load, let the domain decide, append in one transaction."""

from __future__ import annotations

from temporalio import activity

from activities.command_handling import FAILED_ATTEMPTS, CommandResult, Rejects, decide_and_save
from domain.accounts import (
    Account,
    AccountAlreadyExists,
    AccountClosedError,
    AccountNotFound,
    BalanceCeilingExceeded,
    BalanceNotZero,
    CloseAccount,
    DepositMoney,
    InsufficientFunds,
    OpenAccount,
    WithdrawMoney,
)
from domain.repository import Repository
from domain.users import User, UserLockedError, UserNotFound

OPEN_ACCOUNT_REJECTS: Rejects = (UserNotFound, UserLockedError, AccountAlreadyExists)
DEPOSIT_MONEY_REJECTS: Rejects = (AccountNotFound, AccountClosedError, BalanceCeilingExceeded)
WITHDRAW_MONEY_REJECTS: Rejects = (AccountNotFound, AccountClosedError, InsufficientFunds)
CLOSE_ACCOUNT_REJECTS: Rejects = (AccountNotFound, AccountClosedError, BalanceNotZero)


class AccountActivities:
    """Activities on the Account aggregate; a command that fails for neither a rule nor an
    outage is tried `attempts` times (SAGALINE_COMMAND_ATTEMPTS) before it fails for good."""

    def __init__(self, repository: Repository, attempts: int = FAILED_ATTEMPTS) -> None:
        self._repository = repository
        self._attempts = attempts

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
            OPEN_ACCOUNT_REJECTS,
            self._attempts,
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
            DEPOSIT_MONEY_REJECTS,
            self._attempts,
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
            WITHDRAW_MONEY_REJECTS,
            self._attempts,
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
            CLOSE_ACCOUNT_REJECTS,
            self._attempts,
        )
