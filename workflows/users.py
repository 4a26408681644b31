"""User command workflows; each workflow id is derived from its command id."""

from __future__ import annotations

from temporalio import workflow

from workflows.command_outcomes import CommandOutcome, run_command

with workflow.unsafe.imports_passed_through():
    from activities.users import UserActivities
    from domain.users import (
        ChangeUserEmail,
        LockUser,
        RecordLoginAttempt,
        RegisterUser,
        UnlockUser,
    )


def register_user_workflow_id(command_id: str) -> str:
    """The workflow id of a RegisterUser command."""
    return f"register-user/{command_id}"


def user_command_workflow_id(kind: str, command_id: str) -> str:
    """The workflow id of another user command: one workflow per command id."""
    return f"{kind}/{command_id}"


@workflow.defn
class RegisterUserWorkflow:
    """Registers a user, claiming the email address."""

    @workflow.run
    async def run(self, command: RegisterUser) -> CommandOutcome:
        return await run_command(UserActivities.register_user, command)


@workflow.defn
class ChangeUserEmailWorkflow:
    """Moves a user to a new email address."""

    @workflow.run
    async def run(self, command: ChangeUserEmail) -> CommandOutcome:
        return await run_command(UserActivities.change_user_email, command)


@workflow.defn
class LockUserWorkflow:
    """Locks a user."""

    @workflow.run
    async def run(self, command: LockUser) -> CommandOutcome:
        return await run_command(UserActivities.lock_user, command)


@workflow.defn
class UnlockUserWorkflow:
    """Unlocks a user."""

    @workflow.run
    async def run(self, command: UnlockUser) -> CommandOutcome:
        return await run_command(UserActivities.unlock_user, command)


@workflow.defn
class RecordLoginAttemptWorkflow:
    """Records a sign-in attempt (the input to suspicious-activity detection)."""

    @workflow.run
    async def run(self, command: RecordLoginAttempt) -> CommandOutcome:
        return await run_command(UserActivities.record_login_attempt, command)
