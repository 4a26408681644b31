"""GraphQL types of the transfers feature."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.access import reason_shown, sees_account
from api.accounts.types import Account
from api.context import Context
from api.errors import (
    AccountNotFoundPayload,
    CommandFailed,
    InsufficientFundsPayload,
    InvalidInputPayload,
)
from projections.transfers import TransferView


@strawberry.enum(description="Where a transfer stands.")
class TransferStatus(Enum):
    REQUESTED = "REQUESTED"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"


@strawberry.type(description="A money transfer, from the transfers read model.")
class Transfer:
    id: strawberry.ID
    from_account_id: strawberry.ID
    to_account_id: strawberry.ID
    amount: Decimal
    status: TransferStatus
    stored_reason: strawberry.Private[str | None]
    stored_reason_details: strawberry.Private[dict[str, str] | None]
    steps: list[str]
    created_at: datetime | None
    updated_at: datetime | None

    @strawberry.field(description="Why it was rejected; a customer sees no other's amounts.")
    async def reason(self, info: Info[Context, None]) -> str | None:
        return await reason_shown(info.context, self.stored_reason, self.stored_reason_details)

    @strawberry.field(description="The account the money leaves.")
    async def from_account(self, info: Info[Context, None]) -> Account | None:
        view = await info.context.accounts_by_id.load(str(self.from_account_id))
        return (
            None
            if view is None or not sees_account(info.context, view)
            else Account.from_view(view)
        )

    @strawberry.field(description="The account the money reaches.")
    async def to_account(self, info: Info[Context, None]) -> Account | None:
        view = await info.context.accounts_by_id.load(str(self.to_account_id))
        return (
            None
            if view is None or not sees_account(info.context, view)
            else Account.from_view(view)
        )

    @classmethod
    def from_view(cls, view: TransferView) -> Transfer:
        return cls(
            id=strawberry.ID(view.id),
            from_account_id=strawberry.ID(view.from_account_id),
            to_account_id=strawberry.ID(view.to_account_id),
            amount=view.amount,
            status=TransferStatus(view.status.value),
            stored_reason=view.reason,
            stored_reason_details=view.reason_details,
            steps=view.steps,
            created_at=view.created_at,
            updated_at=view.updated_at,
        )


@strawberry.input
class TransferMoneyInput:
    from_account_id: strawberry.ID
    to_account_id: strawberry.ID
    amount: Decimal
    transfer_id: str | None = None


@strawberry.type(name="TransferCompleted")
class TransferCompletedPayload:
    transfer: Transfer
    position: str


@strawberry.type(description="The transfer is still running; query it or send it again.")
class TransferPending:
    transfer: Transfer
    message: str


@strawberry.type(
    name="TransferRejected",
    description="The transfer was refused; whatever it had done was undone.",
)
class TransferRejectedPayload:
    message: str
    reason: str
    transfer: Transfer
    position: str


TransferMoneyPayload = Annotated[
    TransferCompletedPayload
    | TransferPending
    | AccountNotFoundPayload
    | InsufficientFundsPayload
    | TransferRejectedPayload
    | InvalidInputPayload
    | CommandFailed,
    strawberry.union("TransferMoneyPayload"),
]
