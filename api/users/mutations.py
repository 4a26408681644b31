"""User mutations: validate, build the command, run it through its workflow."""

from __future__ import annotations

import asyncio
import secrets
import uuid

import strawberry
from strawberry.types import Info

from api.commands import aggregate_id_for, command_id_or_new, send, typed_rejection
from api.consistency import read_after
from api.context import Context
from api.errors import (
    CommandPending,
    ConcurrencyConflict,
    UserLocked,
    UserNotFound,
    forbidden,
    invalid_input,
)
from api.users.types import (
    Authenticated,
    AuthenticateInput,
    AuthenticatePayload,
    AuthenticationFailed,
    ChangeUserEmailInput,
    ChangeUserEmailPayload,
    EmailAlreadyInUse,
    RegisterUserInput,
    RegisterUserPayload,
    UnlockUserInput,
    UnlockUserPayload,
    User,
    UserEmailChanged,
    UserRegistered,
    UserUnlocked,
)
from domain.errors import InvalidInput
from domain.passwords import hash_password, verify_password
from domain.users import (
    MAX_PASSWORD_LENGTH,
    ChangeUserEmail,
    RecordLoginAttempt,
    RegisterUser,
    UnlockUser,
    check_password,
    normalise_email,
    normalise_name,
)
from domain.users import UserStatus as DomainUserStatus
from projections.users import get_user, password_hash_of
from workflows.users import (
    ChangeUserEmailWorkflow,
    RecordLoginAttemptWorkflow,
    RegisterUserWorkflow,
    UnlockUserWorkflow,
    register_user_workflow_id,
    user_command_workflow_id,
)


async def _user_after(ctx: Context, user_id: str, position: int) -> User:
    """The user as the read model has it once it includes `position`."""
    view = await read_after(ctx, "users", position, lambda conn: get_user(conn, user_id))
    if view is None:
        raise RuntimeError("the user is not in the read model yet")
    return User.from_view(view)


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
        user = await _user_after(ctx, result.aggregate_id, result.position)
        return UserRegistered(user=user, position=str(result.position))

    @strawberry.mutation(description="Give a user a new, unused email address.")
    async def change_user_email(
        self, info: Info[Context, None], input: ChangeUserEmailInput
    ) -> ChangeUserEmailPayload:
        ctx = info.context
        try:
            command_id = command_id_or_new(input.command_id)
            email = normalise_email(input.new_email)
        except InvalidInput as error:
            return invalid_input(error)
        user_id = str(input.user_id)
        command = ChangeUserEmail(command_id, user_id, email, input.expected_version, ctx.actor)
        outcome = await send(
            ctx,
            ChangeUserEmailWorkflow.run,
            command,
            workflow_id=user_command_workflow_id("change-user-email", command_id),
            command_id=command_id,
            aggregate_ids=[user_id],
            summary=f"Change email to {email}",
        )
        if outcome is None:
            return CommandPending(message="the command is still running", command_id=command_id)
        if outcome.rejection is not None:
            if outcome.rejection.type == "EmailAlreadyInUse":
                return EmailAlreadyInUse(message=outcome.rejection.message, email=email)
            allowed = [UserNotFound, ConcurrencyConflict]
            return typed_rejection(outcome.rejection, allowed)  # type: ignore[no-any-return]
        assert outcome.result is not None
        user = await _user_after(ctx, user_id, outcome.result.position)
        return UserEmailChanged(user=user, position=str(outcome.result.position))

    @strawberry.mutation(description="Sign in; every attempt is recorded as an event.")
    async def authenticate(
        self, info: Info[Context, None], input: AuthenticateInput
    ) -> AuthenticatePayload:
        ctx = info.context
        failed = AuthenticationFailed(message="unknown email or wrong password")
        try:
            email = normalise_email(input.email)
        except InvalidInput:
            return failed
        async with ctx.services.engine.connect() as conn:
            found = await password_hash_of(conn, email)
            view = None if found is None else await get_user(conn, found[0])
        if found is None or view is None:
            return failed
        user_id, stored = found
        matches = len(input.password) <= MAX_PASSWORD_LENGTH and await asyncio.to_thread(
            verify_password, input.password, stored
        )
        locked = view.status is DomainUserStatus.LOCKED
        reason = "locked" if locked else ("" if matches else "wrong password")
        command_id = str(uuid.uuid4())
        await send(
            ctx,
            RecordLoginAttemptWorkflow.run,
            RecordLoginAttempt(command_id, user_id, matches and not locked, reason, ctx.actor),
            workflow_id=user_command_workflow_id("record-login-attempt", command_id),
            command_id=command_id,
            aggregate_ids=[user_id],
            summary="Sign-in attempt",
        )
        if locked:
            return UserLocked(message=f"user {user_id} is locked")
        if not matches:
            return failed
        return Authenticated(user=User.from_view(view))

    @strawberry.mutation(description="Operator: let a locked user act again.")
    async def unlock_user(
        self, info: Info[Context, None], input: UnlockUserInput
    ) -> UnlockUserPayload:
        ctx = info.context
        if not ctx.caller.is_operator:
            return forbidden()
        try:
            command_id = command_id_or_new(input.command_id)
        except InvalidInput as error:
            return invalid_input(error)
        user_id = str(input.user_id)
        outcome = await send(
            ctx,
            UnlockUserWorkflow.run,
            UnlockUser(command_id, user_id, ctx.actor),
            workflow_id=user_command_workflow_id("unlock-user", command_id),
            command_id=command_id,
            aggregate_ids=[user_id],
            summary="Unlock user",
        )
        if outcome is None:
            return CommandPending(message="the command is still running", command_id=command_id)
        if outcome.rejection is not None:
            return typed_rejection(outcome.rejection, [UserNotFound])  # type: ignore[no-any-return]
        assert outcome.result is not None
        user = await _user_after(ctx, user_id, outcome.result.position)
        return UserUnlocked(user=user, position=str(outcome.result.position))
