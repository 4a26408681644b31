"""GraphQL types of the accounts feature."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from api.access import sees_user
from api.context import Context
from api.errors import (
    AccountNotFoundPayload,
    BalanceCeilingExceededPayload,
    BalanceNotZeroPayload,
    CommandFailed,
    CommandPending,
    InsufficientFundsPayload,
    InvalidInputPayload,
    UserLockedPayload,
    UserNotFoundPayload,
)
from projections.accounts import AccountView

if TYPE_CHECKING:
    from api.users.types import User


@strawberry.enum(description="Whether an account takes money.")
class AccountStatus(Enum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"


@strawberry.type(description="A bank account, from the accounts read model.")
class Account:
    id: strawberry.ID
    owner_id: strawberry.ID
    balance: Decimal
    currency: str
    status: AccountStatus
    opened_at: datetime
    last_updated: datetime
    version: int

    @strawberry.field(description="The account's owner.")
    async def owner(
        self, info: Info[Context, None]
    ) -> Annotated[User, strawberry.lazy("api.users.types")] | None:
        from api.users.types import User

        if not sees_user(info.context, str(self.owner_id)):
            return None
        view = await info.context.users_by_id.load(str(self.owner_id))
        return None if view is None else User.from_view(view)

    @classmethod
    def from_view(cls, view: AccountView) -> Account:
        return cls(
            id=strawberry.ID(view.id),
            owner_id=strawberry.ID(view.owner_id),
            balance=view.balance,
            currency=view.currency,
            status=AccountStatus(view.status.value),
            opened_at=view.opened_at,
            last_updated=view.last_updated,
            version=view.version,
        )


@strawberry.input
class OpenAccountInput:
    owner_id: strawberry.ID
    currency: str | None = None
    command_id: str | None = None


@strawberry.input
class DepositMoneyInput:
    account_id: strawberry.ID
    amount: Decimal
    command_id: str | None = None


@strawberry.input
class WithdrawMoneyInput:
    account_id: strawberry.ID
    amount: Decimal
    command_id: str | None = None


@strawberry.input
class CloseAccountInput:
    account_id: strawberry.ID
    command_id: str | None = None


@strawberry.type(name="AccountOpened")
class AccountOpenedPayload:
    account: Account
    position: str


@strawberry.type(name="MoneyDeposited")
class MoneyDepositedPayload:
    account: Account
    position: str


@strawberry.type(name="MoneyWithdrawn")
class MoneyWithdrawnPayload:
    account: Account
    position: str


@strawberry.type(
    name="AccountClosed",
    description="The account is closed: the success of closeAccount (with its position), or "
    "why money could not move (without one).",
)
class AccountClosedPayload:
    message: str
    account: Account | None = None
    position: str | None = None


OpenAccountPayload = Annotated[
    AccountOpenedPayload
    | UserNotFoundPayload
    | UserLockedPayload
    | InvalidInputPayload
    | CommandPending
    | CommandFailed,
    strawberry.union("OpenAccountPayload"),
]
DepositMoneyPayload = Annotated[
    MoneyDepositedPayload
    | AccountNotFoundPayload
    | AccountClosedPayload
    | BalanceCeilingExceededPayload
    | InvalidInputPayload
    | CommandPending
    | CommandFailed,
    strawberry.union("DepositMoneyPayload"),
]
WithdrawMoneyPayload = Annotated[
    MoneyWithdrawnPayload
    | AccountNotFoundPayload
    | InsufficientFundsPayload
    | AccountClosedPayload
    | InvalidInputPayload
    | CommandPending
    | CommandFailed,
    strawberry.union("WithdrawMoneyPayload"),
]
CloseAccountPayload = Annotated[
    AccountClosedPayload
    | AccountNotFoundPayload
    | BalanceNotZeroPayload
    | InvalidInputPayload
    | CommandPending
    | CommandFailed,
    strawberry.union("CloseAccountPayload"),
]
