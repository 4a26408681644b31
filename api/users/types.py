"""GraphQL types of the users feature."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.access import sees_user
from api.accounts.types import Account
from api.context import OWNER_ACCOUNTS, Context
from api.errors import (
    CommandFailed,
    CommandPending,
    ConcurrencyConflictPayload,
    Forbidden,
    InvalidInputPayload,
    TooManyAccounts,
    UserLockedPayload,
    UserNotFoundPayload,
)
from projections.accounts import AccountView
from projections.users import UserView


@strawberry.enum(description="Whether a user may sign in and act.")
class UserStatus(Enum):
    ACTIVE = "ACTIVE"
    LOCKED = "LOCKED"


@strawberry.type(description="A registered user, from the users read model.")
class User:
    id: strawberry.ID
    email: str
    name: str
    status: UserStatus
    registered_at: datetime
    last_updated: datetime
    version: int

    @strawberry.field(
        description=f"The user's accounts in id order (batched across users per request), at"
        f" most {OWNER_ACCOUNTS}: for a user with more, null with an error whose code is"
        " TOO_MANY_ACCOUNTS; page through those with accounts(ownerId:, first:, after:)."
    )
    async def accounts(self, info: Info[Context, None]) -> list[Account] | None:
        if not sees_user(info.context, str(self.id)):
            return []
        views = await info.context.accounts_by_owner.load(str(self.id))
        return [Account.from_view(v) for v in owner_accounts(views)]

    @classmethod
    def from_view(cls, view: UserView) -> User:
        return cls(
            id=strawberry.ID(view.id),
            email=view.email,
            name=view.name,
            status=UserStatus(view.status.value),
            registered_at=view.registered_at,
            last_updated=view.last_updated,
            version=view.version,
        )


def owner_accounts(views: list[AccountView]) -> list[AccountView]:
    """A user's accounts as its `accounts` list answers them, loaded one past the bound:
    all of them, or TooManyAccounts if there are more than the list holds."""
    if len(views) > OWNER_ACCOUNTS:
        raise TooManyAccounts(OWNER_ACCOUNTS)
    return views


@strawberry.input
class RegisterUserInput:
    email: str
    name: str
    password: str
    command_id: str | None = None


@strawberry.type(name="UserRegistered")
class UserRegisteredPayload:
    user: User
    position: str


@strawberry.type(
    name="EmailAlreadyInUse", description="Another user already has this email address."
)
class EmailAlreadyInUsePayload:
    message: str
    email: str


RegisterUserPayload = Annotated[
    UserRegisteredPayload
    | EmailAlreadyInUsePayload
    | InvalidInputPayload
    | CommandPending
    | Forbidden
    | CommandFailed,
    strawberry.union("RegisterUserPayload"),
]


@strawberry.input
class ChangeUserEmailInput:
    user_id: strawberry.ID
    new_email: str
    expected_version: int | None = None
    command_id: str | None = None


@strawberry.type(name="UserEmailChanged")
class UserEmailChangedPayload:
    user: User
    position: str


ChangeUserEmailPayload = Annotated[
    UserEmailChangedPayload
    | UserNotFoundPayload
    | EmailAlreadyInUsePayload
    | ConcurrencyConflictPayload
    | InvalidInputPayload
    | CommandPending
    | CommandFailed,
    strawberry.union("ChangeUserEmailPayload"),
]


@strawberry.input
class AuthenticateInput:
    email: str
    password: str


@strawberry.type(description="Signed in: a customer session for the user, until expiresAt.")
class Authenticated:
    user: User
    token: str = strawberry.field(description="Bearer token of a session acting as this user.")
    expires_at: datetime


@strawberry.type(description="Unknown email or wrong password (deliberately not saying which).")
class AuthenticationFailed:
    message: str


AuthenticatePayload = Annotated[
    Authenticated | AuthenticationFailed | UserLockedPayload,
    strawberry.union("AuthenticatePayload"),
]


@strawberry.input
class UnlockUserInput:
    user_id: strawberry.ID
    command_id: str | None = None


@strawberry.type(name="UserUnlocked")
class UserUnlockedPayload:
    user: User
    position: str


UnlockUserPayload = Annotated[
    UserUnlockedPayload
    | UserNotFoundPayload
    | Forbidden
    | InvalidInputPayload
    | CommandPending
    | CommandFailed,
    strawberry.union("UnlockUserPayload"),
]
