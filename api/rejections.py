"""One table from a business rejection to the GraphQL type that answers it.

A resolver meets a rejection either as the domain error itself (input it checked) or as the
Rejection a command's workflow came back with. Both carry the error's message and details, and a
payload type is filled from them: `message`, and each detail named like one of its fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar, cast, get_args

from api.accounts.types import AccountClosedPayload
from api.errors import (
    AccountNotFoundPayload,
    BalanceCeilingExceededPayload,
    BalanceNotZeroPayload,
    ConcurrencyConflictPayload,
    InsufficientFundsPayload,
    InvalidInputPayload,
    UserLockedPayload,
    UserNotFoundPayload,
)
from api.users.types import EmailAlreadyInUsePayload
from domain.accounts import (
    AccountAlreadyExists,
    AccountClosedError,
    AccountNotFound,
    BalanceCeilingExceeded,
    BalanceNotZero,
    InsufficientFunds,
)
from domain.errors import ConcurrencyConflict, DomainError, InvalidInput
from domain.users import EmailAlreadyInUse, UserAlreadyExists, UserLockedError, UserNotFound
from workflows.command_outcomes import Rejection

P = TypeVar("P")

PAYLOADS: dict[type[DomainError], type[Any]] = {
    InvalidInput: InvalidInputPayload,
    ConcurrencyConflict: ConcurrencyConflictPayload,
    AccountNotFound: AccountNotFoundPayload,
    AccountClosedError: AccountClosedPayload,
    InsufficientFunds: InsufficientFundsPayload,
    BalanceNotZero: BalanceNotZeroPayload,
    BalanceCeilingExceeded: BalanceCeilingExceededPayload,
    EmailAlreadyInUse: EmailAlreadyInUsePayload,
    UserNotFound: UserNotFoundPayload,
    UserLockedError: UserLockedPayload,
}
"""The rejections a client has a GraphQL type for; a transfer names the others as its reason."""

_PAYLOAD_OF_CODE = {error.code: payload_type for error, payload_type in PAYLOADS.items()}


class Rejected(Protocol):
    """What a payload is filled from: a domain error, or the Rejection a workflow returned."""

    @property
    def message(self) -> str: ...

    @property
    def details(self) -> Mapping[str, str]: ...


def payload(payload_type: type[P], rejected: Rejected) -> P:
    """The payload type filled from the rejection's message and the details it has fields for."""
    names = {f.name for f in dataclasses.fields(cast(Any, payload_type))}
    facts = {name: value for name, value in rejected.details.items() if name in names}
    return cast(Callable[..., P], payload_type)(message=rejected.message, **facts)


def payload_of(error: DomainError) -> Any:
    """The GraphQL type that answers a rule a resolver checked itself."""
    return payload(PAYLOADS[type(error)], error)


def invalid_input(error: InvalidInput) -> InvalidInputPayload:
    """The answer to input that broke its format or range rule."""
    answer: InvalidInputPayload = payload_of(error)
    return answer


def command_id_reused() -> InvalidInputPayload:
    """The answer to a request under a `commandId` another request used for something else."""
    return invalid_input(InvalidInput("commandId", "was already used by another command"))


REUSED_COMMAND_ID = frozenset({UserAlreadyExists.code, AccountAlreadyExists.code})
"""A new user's or account's id is derived from its command's id, so when that aggregate
already exists an earlier command used the id: the client's `commandId` is the bad input."""


def rejection_payload(
    rejection: Rejection, union: object, otherwise: Callable[[Rejection], object]
) -> Any:
    """The member of the mutation's payload union that answers a workflow's rejection.

    A rejection the union has no member for is answered by `otherwise`.
    """
    if rejection.type in REUSED_COMMAND_ID:
        message = "commandId: was already used by another command"
        rejection = Rejection(InvalidInput.code, message, {"field": "commandId"})
    payload_type = _PAYLOAD_OF_CODE.get(rejection.type)
    if payload_type is not None and payload_type in members(union):
        return payload(payload_type, rejection)
    return otherwise(rejection)


def members(union: object) -> tuple[type[Any], ...]:
    """The types of an `Annotated[A | B | ..., strawberry.union(...)]` payload union."""
    types, _ = get_args(union)
    return get_args(types)
