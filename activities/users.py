"""User command activities: each loads the user, asks the domain, appends the events."""

from __future__ import annotations

import functools

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.command_handling import (
    FAILED_ATTEMPTS,
    CommandResult,
    Rejects,
    decide_and_save,
    event_ids,
    event_metadata,
    rejections,
)
from domain.credentials import Credentials, PasswordCredential
from domain.errors import ConcurrencyConflict, InvalidInput
from domain.event_store import UniqueKeyTaken, WrongExpectedVersion
from domain.repository import Repository, retry_on_conflict
from domain.users import (
    ChangeUserEmail,
    EmailAlreadyInUse,
    LockUser,
    RecordLoginAttempt,
    RegisterUser,
    UnlockUser,
    User,
    UserAlreadyExists,
    UserNotFound,
    email_key,
)

REGISTER_USER_REJECTS: Rejects = (EmailAlreadyInUse, InvalidInput, UserAlreadyExists)
CHANGE_USER_EMAIL_REJECTS: Rejects = (
    UserNotFound,
    EmailAlreadyInUse,
    ConcurrencyConflict,
    InvalidInput,
)
LOCK_USER_REJECTS: Rejects = (UserNotFound,)
UNLOCK_USER_REJECTS: Rejects = (UserNotFound,)
RECORD_LOGIN_ATTEMPT_REJECTS: Rejects = (UserNotFound,)


class UserActivities:
    """Activities on the User aggregate; a command that fails for neither a rule nor an
    outage is tried `attempts` times (SAGALINE_COMMAND_ATTEMPTS) before it fails for good."""

    def __init__(
        self, repository: Repository, credentials: Credentials, attempts: int = FAILED_ATTEMPTS
    ) -> None:
        self._repository = repository
        self._credentials = credentials
        self._attempts = attempts

    @activity.defn
    async def register_user(self, command: RegisterUser) -> CommandResult:
        """Append UserRegistered, claiming the email and setting the held password atomically.

        The API held the hash under the command's id; a command sent before it did so carries
        the hash itself, and holds it here first. A command that will never append (rejected,
        or failed for good) lets its held hash go.
        """
        if command.password_hash:
            credential = PasswordCredential(command.user_id, command.password_hash)
            await self._credentials.hold(command.command_id, credential)
        user = User(command.user_id)
        try:
            with rejections(command.command_id, REGISTER_USER_REJECTS, self._attempts):
                try:
                    event = user.register(command.email, command.name)
                    result = await self._repository.save(
                        user,
                        event_ids(),
                        event_metadata(command.command_id, command.actor),
                        claims=[email_key(event.email)],
                        append=functools.partial(self._credentials.append_with, command.command_id),
                    )
                except UniqueKeyTaken as taken:
                    raise EmailAlreadyInUse(taken.key.value) from None
                except WrongExpectedVersion:
                    raise UserAlreadyExists(command.user_id) from None
        except ApplicationError as final:
            if final.non_retryable:
                await self._credentials.discard(command.command_id)
            raise
        return CommandResult(user.id, result.versions[user.id], result.position)

    @activity.defn
    async def change_user_email(self, command: ChangeUserEmail) -> CommandResult:
        """Move the user to a new address: claim it and release the old one atomically."""
        ids = event_ids()
        metadata = event_metadata(command.command_id, command.actor)

        async def attempt() -> CommandResult:
            user = await self._repository.load(User, command.user_id)
            expected = command.expected_version
            if expected is not None and user.exists and user.version != expected:
                raise ConcurrencyConflict(user.id, expected, user.version)
            event = user.change_email(command.new_email)
            if event is None:
                return CommandResult(user.id, user.version, 0)
            result = await self._repository.save(
                user,
                ids,
                metadata,
                claims=[email_key(event.new_email)],
                releases=[email_key(event.old_email)],
            )
            return CommandResult(user.id, user.version, result.position)

        with rejections(command.command_id, CHANGE_USER_EMAIL_REJECTS, self._attempts):
            try:
                if command.expected_version is not None:
                    return await attempt()
                return await retry_on_conflict(attempt)
            except UniqueKeyTaken as taken:
                raise EmailAlreadyInUse(taken.key.value) from None
            except WrongExpectedVersion as conflict:
                raise ConcurrencyConflict(
                    command.user_id, conflict.expected, conflict.actual
                ) from None

    @activity.defn
    async def lock_user(self, command: LockUser) -> CommandResult:
        """Lock the user (no change if already locked)."""
        return await decide_and_save(
            self._repository,
            command.command_id,
            command.actor,
            [(User, command.user_id)],
            lambda user: user.lock(command.reason),
            LOCK_USER_REJECTS,
            self._attempts,
        )

    @activity.defn
    async def unlock_user(self, command: UnlockUser) -> CommandResult:
        """Unlock the user (no change if not locked)."""
        return await decide_and_save(
            self._repository,
            command.command_id,
            command.actor,
            [(User, command.user_id)],
            lambda user: user.unlock(),
            UNLOCK_USER_REJECTS,
            self._attempts,
        )

    @activity.defn
    async def record_login_attempt(self, command: RecordLoginAttempt) -> CommandResult:
        """Append UserLoginSucceeded or UserLoginFailed."""
        return await decide_and_save(
            self._repository,
            command.command_id,
            command.actor,
            [(User, command.user_id)],
            lambda user: user.record_login(command.succeeded, command.reason),
            RECORD_LOGIN_ATTEMPT_REJECTS,
            self._attempts,
        )
