"""Error types shared by every feature, and turning workflow rejections into them."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError

from domain.errors import InvalidInput as InvalidInputError


@strawberry.type(description="An input field broke its format or range rule.")
class InvalidInput:
    message: str
    field: str


@strawberry.type(description="The command is still running; send it again with the same id.")
class CommandPending:
    message: str
    command_id: str


def invalid_input(error: InvalidInputError) -> InvalidInput:
    """The GraphQL type for a domain validation error."""
    return InvalidInput(message=error.message, field=error.field)


class ConsistencyTimeout(GraphQLError):
    """The read models did not reach the requested position within the bound."""

    def __init__(self, position: int, seconds: float) -> None:
        super().__init__(
            f"read models did not reach position {position} within {seconds:g}s",
            extensions={"code": "CONSISTENCY_TIMEOUT"},
        )


class BadPosition(GraphQLError):
    """A `consistentWith` value that is not a position."""

    def __init__(self, value: str) -> None:
        super().__init__(
            f"consistentWith must be a position as returned by a mutation, not {value[:40]!r}",
            extensions={"code": "BAD_USER_INPUT"},
        )


@strawberry.type(description="No user has this id.")
class UserNotFound:
    message: str


@strawberry.type(description="The user is locked and may not do this until unlocked.")
class UserLocked:
    message: str


@strawberry.type(description="No account has this id.")
class AccountNotFound:
    message: str


@strawberry.type(description="The account does not hold enough money.")
class InsufficientFunds:
    message: str


@strawberry.type(description="The account still holds money, so it cannot be closed.")
class BalanceNotZero:
    message: str


@strawberry.type(description="Another change reached the aggregate first; reload and retry.")
class ConcurrencyConflict:
    message: str


@strawberry.type(description="This operation needs an operator token.")
class Forbidden:
    message: str


def forbidden() -> Forbidden:
    """The answer to a client token on an operator operation."""
    return Forbidden(message="this operation needs an operator token")
