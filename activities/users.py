"""User command activities: each loads the user, asks the domain, appends the events."""

from __future__ import annotations

from temporalio import activity

from activities.commands import CommandResult, event_ids, event_metadata, rejection
from domain.errors import DomainError
from domain.event_store import UniqueKeyTaken, WrongExpectedVersion
from domain.repository import Repository
from domain.users import EmailAlreadyInUse, RegisterUser, User, UserAlreadyExists, email_key


class UserActivities:
    """Activities on the User aggregate."""

    def __init__(self, repository: Repository) -> None:
        self._repository = repository

    @activity.defn
    async def register_user(self, command: RegisterUser) -> CommandResult:
        """Append UserRegistered, claiming the email address in the same transaction."""
        user = User(command.user_id)
        try:
            event = user.register(command.email, command.name, command.password_hash)
            result = await self._repository.save(
                user,
                event_ids(),
                event_metadata(command.command_id, command.actor),
                claims=[email_key(event.email)],
            )
        except UniqueKeyTaken as taken:
            raise rejection(EmailAlreadyInUse(taken.key.value)) from None
        except WrongExpectedVersion:
            raise rejection(UserAlreadyExists(command.user_id)) from None
        except DomainError as error:
            raise rejection(error) from None
        return CommandResult(user.id, result.versions[user.id], result.position)
