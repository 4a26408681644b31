"""Account command workflows; each workflow id is derived from its command id."""

from __future__ import annotations

from temporalio import workflow

from workflows.command_outcomes import CommandOutcome, run_command

with workflow.unsafe.imports_passed_through():
    from activities.accounts import AccountActivities
    from domain.accounts import CloseAccount, DepositMoney, OpenAccount, WithdrawMoney


def account_command_workflow_id(kind: str, command_id: str) -> str:
    """The workflow id of an account command: one workflow per command id."""
    return f"{kind}/{command_id}"


@workflow.defn
class OpenAccountWorkflow:
    """Opens an account for an active user."""

    @workflow.run
    async def run(self, command: OpenAccount) -> CommandOutcome:
        return await run_command(AccountActivities.open_account, command)


@workflow.defn
class DepositMoneyWorkflow:
    """Deposits money into an account."""

    @workflow.run
    async def run(self, command: DepositMoney) -> CommandOutcome:
        return await run_command(AccountActivities.deposit_money, command)


@workflow.defn
class WithdrawMoneyWorkflow:
    """Withdraws money from an account."""

    @workflow.run
    async def run(self, command: WithdrawMoney) -> CommandOutcome:
        return await run_command(AccountActivities.withdraw_money, command)


@workflow.defn
class CloseAccountWorkflow:
    """Closes an empty account."""

    @workflow.run
    async def run(self, command: CloseAccount) -> CommandOutcome:
        return await run_command(AccountActivities.close_account, command)
