"""User mutations: validate, build the command, run it through its workflow."""

from __future__ import annotations

import asyncio
import secrets

import strawberry
from strawberry.types import Info

from api.commands import aggregate_id_for, command_id_or_new, send
from api.context import Context
from api.errors import CommandPending, invalid_input
from api.users.types import (
    EmailAlreadyInUse,
    RegisterUserInput,
    RegisterUserPayload,
    User,
    UserRegistered,
)
from domain.errors import InvalidInput
from domain.passwords import hash_password
from domain.users import RegisterUser, check_password, normalise_email, normalise_name
from projections.consistency import wait_until_caught_up
from projections.users import get_user
from workflows.users import RegisterUserWorkflow, register_user_workflow_id


@strawberry.type
class UserMutations:
    @strawberry.mutation(description="Register a new user with a unique email address.")
    async def register_user(
        self, info: Info[Context, None], input: RegisterUserInput
    ) -> RegisterUserPayload:
        ctx = info.context
        try:
            command_id = command_id_or_new(input.command_id)
            email = normalise_email(input.email)
            name = normalise_name(input.name)
            password = check_password(input.password)
        except InvalidInput as error:
            return invalid_input(error)
        password_hash = await asyncio.to_thread(hash_password, password, secrets.token_bytes(16))
        user_id = aggregate_id_for("user", command_id)
        command = RegisterUser(command_id, user_id, email, name, password_hash, ctx.actor)
        outcome = await send(
            ctx,
            RegisterUserWorkflow.run,
            command,
            workflow_id=register_user_workflow_id(command_id),
            command_id=command_id,
            aggregate_ids=[user_id],
            summary=f"Register user {email}",
        )
        if outcome is None:
            return CommandPending(message="registration is still running", command_id=command_id)
        if outcome.rejection is not None:
            if outcome.rejection.type == "EmailAlreadyInUse":
                return EmailAlreadyInUse(message=outcome.rejection.message, email=email)
            raise RuntimeError(f"unexpected rejection {outcome.rejection.type}")
        assert outcome.result is not None
        result = outcome.result
        services = ctx.services
        await wait_until_caught_up(
            services.engine,
            ["users"],
            result.position,
            services.settings.consistency_timeout_seconds,
        )
        async with services.engine.connect() as conn:
            view = await get_user(conn, result.aggregate_id)
        if view is None:
            raise RuntimeError("registered user is not in the read model yet")
        return UserRegistered(user=User.from_view(view), position=str(result.position))
