"""Error types shared by every feature.

A type named like a domain event or error has a Python name ending in `Payload`; its GraphQL
name is the contract's.
"""

from __future__ import annotations

import strawberry
from graphql import GraphQLError


@strawberry.type(name="InvalidInput", description="An input field broke its format or range rule.")
class InvalidInputPayload:
    message: str
    field: str


@strawberry.type(description="The command is still running; send it again with the same id.")
class CommandPending:
    message: str
    command_id: str


@strawberry.type(
    description="The command failed for a reason that is neither a business rule nor an "
    "outage (it was tried several times); the correlation id finds it in the logs."
)
class CommandFailed:
    message: str
    correlation_id: str


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


class PositionAhead(GraphQLError):
    """A `consistentWith` position past the event store's head: no mutation returned it.

    The message leaves the head out: how far the whole store has gone is `systemStatus`'s,
    which customers are refused.
    """

    def __init__(self, position: int) -> None:
        super().__init__(
            f"consistentWith {position} is not a position a mutation returned",
            extensions={"code": "BAD_USER_INPUT"},
        )


class TooManyAccounts(GraphQLError):
    """A user's `accounts` list asked of a user with more accounts than it holds."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the user has more than {limit} accounts, more than its accounts list answers;"
            " page through them with accounts(ownerId:, first:, after:)",
            extensions={"code": "TOO_MANY_ACCOUNTS", "limit": limit},
        )


@strawberry.type(name="UserNotFound", description="No user has this id.")
class UserNotFoundPayload:
    message: str


@strawberry.type(
    name="UserLocked", description="The user is locked and may not do this until unlocked."
)
class UserLockedPayload:
    message: str


@strawberry.type(name="AccountNotFound", description="No account has this id.")
class AccountNotFoundPayload:
    message: str


@strawberry.type(name="InsufficientFunds", description="The account does not hold enough money.")
class InsufficientFundsPayload:
    message: str


@strawberry.type(
    name="BalanceNotZero", description="The account still holds money, so it cannot be closed."
)
class BalanceNotZeroPayload:
    message: str


@strawberry.type(
    name="BalanceCeilingExceeded",
    description="The deposit would leave the account holding more than any account may.",
)
class BalanceCeilingExceededPayload:
    message: str


def bad_user_input(message: str, field: str) -> GraphQLError:
    """The error a query (or a mutation without an InvalidInput answer) gives for bad input."""
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT", "field": field})


@strawberry.type(
    name="ConcurrencyConflict",
    description="Another change reached the aggregate first; reload and retry.",
)
class ConcurrencyConflictPayload:
    message: str


@strawberry.type(description="The caller may not do this: it needs an operator, or a client token.")
class Forbidden:
    message: str


def forbidden() -> Forbidden:
    """The answer to a client token on an operator operation."""
    return Forbidden(message="this operation needs an operator token")
