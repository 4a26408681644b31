"""Account queries, answered from the accounts read model."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.access import sees_account
from api.accounts.types import Account
from api.consistency import ensure_consistent
from api.context import Context
from api.pagination import Connection, connection, decode_cursor, page_size
from projections.accounts import list_accounts

READ_MODELS = ["accounts"]


@strawberry.type
class AccountQueries:
    @strawberry.field(description="One account by id.")
    async def account(
        self, info: Info[Context, None], id: strawberry.ID, consistent_with: str | None = None
    ) -> Account | None:
        await ensure_consistent(info.context, consistent_with, READ_MODELS)
        view = await info.context.services.accounts.get(str(id))
        if view is None or not sees_account(info.context, view):
            return None
        return Account.from_view(view)

    @strawberry.field(description="Accounts, optionally of one owner, in id order.")
    async def accounts(
        self,
        info: Info[Context, None],
        owner_id: strawberry.ID | None = None,
        first: int | None = None,
        after: str | None = None,
        consistent_with: str | None = None,
    ) -> Connection[Account]:
        size = page_size(first)
        await ensure_consistent(info.context, consistent_with, READ_MODELS)
        owner = None if owner_id is None else str(owner_id)
        own = info.context.caller.customer
        if own is not None and owner not in (None, own):
            return connection([], size, lambda v: v.id, Account.from_view)
        owner = owner if own is None else own
        async with info.context.services.read_engine.connect() as conn:
            rows = await list_accounts(conn, owner, decode_cursor(after), size + 1)
        return connection(rows, size, lambda v: v.id, Account.from_view)
