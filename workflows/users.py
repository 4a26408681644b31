"""User command workflows; each workflow id is derived from its command id."""

from __future__ import annotations

from temporalio import workflow

from workflows.commands import CommandOutcome, run_command

with workflow.unsafe.imports_passed_through():
    from activities.users import UserActivities
    from domain.users import RegisterUser


def register_user_workflow_id(command_id: str) -> str:
    """The workflow id of a RegisterUser command."""
    return f"register-user/{command_id}"


@workflow.defn
class RegisterUserWorkflow:
    """Registers a user, claiming the email address."""

    @workflow.run
    async def run(self, command: RegisterUser) -> CommandOutcome:
        return await run_command(UserActivities.register_user, command)
