"""User mutations: validate, build the command, run it through its workflow."""

from __future__ import annotations

import asyncio
import functools
import secrets
import uuid
from collections.abc import Callable
from typing import Any

import strawberry
from strawberry.types import Info

from activities.command_handling import CommandResult
from adapters.credentials import discard_held_credential, hold_credential, password_hash_of
from api.access import sees_user
from api.consistency import read_after, read_model_behind
from api.context import Context
from api.dispatch import aggregate_id_for, command_id_or_new, execute, send, start
from api.errors import CommandPending, Forbidden, UserNotFoundPayload, forbidden
from api.rejections import command_id_reused, invalid_input, payload_of
from api.users.types import (
    Authenticated,
    AuthenticateInput,
    AuthenticatePayload,
    AuthenticationFailed,
    ChangeUserEmailInput,
    ChangeUserEmailPayload,
    RegisterUserInput,
    RegisterUserPayload,
    UnlockUserInput,
    UnlockUserPayload,
    User,
    UserEmailChangedPayload,
    UserRegisteredPayload,
    UserUnlockedPayload,
)
from domain.credentials import PasswordCredential
from domain.errors import InvalidInput
from domain.inputs import check_version
from domain.passwords import hash_password, verify_password
from domain.users import (
    MAX_PASSWORD_LENGTH,
    ChangeUserEmail,
    RecordLoginAttempt,
    RegisterUser,
    UnlockUser,
    UserLockedError,
    check_password,
    normalise_email,
    normalise_name,
)
from domain.users import UserStatus as DomainUserStatus
from projections.users import get_user, get_user_by_email
from workflows.users import (
    ChangeUserEmailWorkflow,
    RecordLoginAttemptWorkflow,
    RegisterUserWorkflow,
    UnlockUserWorkflow,
    register_user_workflow_id,
    user_command_workflow_id,
)


async def _execute(
    ctx: Context,
    workflow: Any,
    command: Any,
    workflow_id: str,
    summary: str,
    union: object,
    success: Callable[[User, str], object],
) -> Any:
    """Run a user command's workflow; on success answer with the user, once read back."""

    async def succeeded(result: CommandResult) -> object:
        user_id, position = result.aggregate_id, result.position
        view = await read_after(ctx, "users", position, lambda conn: get_user(conn, user_id))
        if view is None or view.version < result.version:
            return read_model_behind(command.command_id)
        return success(User.from_view(view), str(position))

    return await execute(
        ctx,
        workflow.run,
        command,
        workflow_id=workflow_id,
        aggregate_ids=[command.user_id],
        summary=summary,
        union=union,
        success=succeeded,
    )


@functools.cache
def _unknown_user_hash() -> str:
    """A hash no password matches, made as every stored one is (same cost)."""
    return hash_password(secrets.token_urlsafe(32), secrets.token_bytes(16))


@strawberry.type
class UserMutations:
    @strawberry.mutation(description="Register a new user with a unique email address.")
    async def register_user(
        self, info: Info[Context, None], input: RegisterUserInput
    ) -> RegisterUserPayload:
        ctx = info.context
        if ctx.caller.customer is not None:
            return Forbidden(message="a customer session cannot register users")
        try:
            command_id = command_id_or_new(ctx, input.command_id)
            email = normalise_email(input.email)
            name = normalise_name(input.name)
            password = check_password(input.password)
        except InvalidInput as error:
            return invalid_input(error)
        password_hash = await asyncio.to_thread(hash_password, password, secrets.token_bytes(16))
        user_id = aggregate_id_for("user", command_id)
        # The hash waits in the database for the command's activity; the command (the
        # workflow's input, kept in Temporal's history) carries none. The first hash held
        # under the id is the one set: a request that finds one is a retry only with the
        # same password, and holds nothing (nor lets go of what another request held).
        engine = ctx.services.engine
        async with engine.begin() as conn:
            earlier = await hold_credential(
                conn, command_id, PasswordCredential(user_id, password_hash)
            )
        if earlier is not None and not await asyncio.to_thread(verify_password, password, earlier):
            return command_id_reused()
        answer = await _execute(
            ctx,
            RegisterUserWorkflow,
            RegisterUser(command_id, user_id, email, name, actor=ctx.actor),
            register_user_workflow_id(command_id),
            f"Register user {email}",
            RegisterUserPayload,
            lambda user, position: UserRegisteredPayload(user=user, position=position),
        )
        if earlier is None and not isinstance(answer, CommandPending):
            # Finished: the activity took the hash this request held, or never will (a
            # repeated or refused command).
            async with engine.begin() as conn:
                await discard_held_credential(conn, command_id)
        return answer  # type: ignore[no-any-return]

    @strawberry.mutation(description="Give a user a new, unused email address.")
    async def change_user_email(
        self, info: Info[Context, None], input: ChangeUserEmailInput
    ) -> ChangeUserEmailPayload:
        ctx = info.context
        if not sees_user(ctx, str(input.user_id)):
            return UserNotFoundPayload(message=f"user {input.user_id} not found")
        try:
            command_id = command_id_or_new(ctx, input.command_id)
            email = normalise_email(input.new_email)
            expected_version = check_version("expectedVersion", input.expected_version)
        except InvalidInput as error:
            return invalid_input(error)
        user_id = str(input.user_id)
        command = ChangeUserEmail(command_id, user_id, email, expected_version, ctx.actor)
        return await _execute(  # type: ignore[no-any-return]
            ctx,
            ChangeUserEmailWorkflow,
            command,
            user_command_workflow_id("change-user-email", command_id),
            f"Change email to {email}",
            ChangeUserEmailPayload,
            lambda user, position: UserEmailChangedPayload(user=user, position=position),
        )

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
            view = await get_user_by_email(conn, email)
            stored = None if view is None else await password_hash_of(conn, view.id)
        # An unknown email costs a hash check too, so the time taken says nothing of which
        # addresses are registered.
        checked = stored if stored is not None else _unknown_user_hash()
        matches = len(input.password) <= MAX_PASSWORD_LENGTH and await asyncio.to_thread(
            verify_password, input.password, checked
        )
        if view is None or stored is None:
            return failed
        user_id = view.id
        locked = view.status is DomainUserStatus.LOCKED
        reason = "locked" if locked else ("" if matches else "wrong password")
        command_id = str(uuid.uuid4())
        attempt = RecordLoginAttempt(command_id, user_id, matches and not locked, reason, ctx.actor)
        workflow_id = user_command_workflow_id("record-login-attempt", command_id)
        run = RecordLoginAttemptWorkflow.run
        if not matches:
            # Refused without waiting for the attempt's workflow (Temporal has it once it is
            # started): waiting would tell a registered address from an unknown one by the
            # time taken. Nor does a wrong password learn that the user is locked.
            await start(
                ctx,
                run,
                attempt,
                workflow_id=workflow_id,
                command_id=command_id,
                aggregate_ids=[user_id],
                summary="Sign-in attempt",
            )
            return failed
        await send(
            ctx,
            run,
            attempt,
            workflow_id=workflow_id,
            command_id=command_id,
            aggregate_ids=[user_id],
            summary="Sign-in attempt",
        )
        if locked:
            return payload_of(UserLockedError(user_id))  # type: ignore[no-any-return]
        sessions = ctx.services.tokens.sessions
        if sessions is None:
            raise RuntimeError("customer sessions are not configured (SAGALINE_SESSION_KEY)")
        token, session = sessions.issue(user_id, lock_epoch=view.locked_version)
        return Authenticated(user=User.from_view(view), token=token, expires_at=session.expires_at)

    @strawberry.mutation(description="Operator: let a locked user act again.")
    async def unlock_user(
        self, info: Info[Context, None], input: UnlockUserInput
    ) -> UnlockUserPayload:
        ctx = info.context
        if not ctx.caller.is_operator:
            return forbidden()
        try:
            command_id = command_id_or_new(ctx, input.command_id)
        except InvalidInput as error:
            return invalid_input(error)
        return await _execute(  # type: ignore[no-any-return]
            ctx,
            UnlockUserWorkflow,
            UnlockUser(command_id, str(input.user_id), ctx.actor),
            user_command_workflow_id("unlock-user", command_id),
            "Unlock user",
            UnlockUserPayload,
            lambda user, position: UserUnlockedPayload(user=user, position=position),
        )
