"""GraphQL types of the users feature."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry

from api.errors import CommandPending, InvalidInput
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


@strawberry.input
class RegisterUserInput:
    email: str
    name: str
    password: str
    command_id: str | None = None


@strawberry.type
class UserRegistered:
    user: User
    position: str


@strawberry.type(description="Another user already has this email address.")
class EmailAlreadyInUse:
    message: str
    email: str


RegisterUserPayload = Annotated[
    UserRegistered | EmailAlreadyInUse | InvalidInput | CommandPending,
    strawberry.union("RegisterUserPayload"),
]
