"""Transfer queries, answered from the transfers read model."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from api.access import may_use_account, sees_transfer
from api.consistency import ensure_consistent
from api.context import Context
from api.pagination import Connection, connection, decode_cursor, page_size
from api.transfers.types import Transfer, TransferStatus
from domain.transfers import TransferStatus as DomainTransferStatus
from projections.consistency import wait_until_caught_up
from projections.transfers import get_transfer, list_transfers

READ_MODELS = ["transfers"]


@strawberry.type
class TransferQueries:
    @strawberry.field(description="One transfer by id.")
    async def transfer(
        self, info: Info[Context, None], id: strawberry.ID, consistent_with: str | None = None
    ) -> Transfer | None:
        await ensure_consistent(info.context, consistent_with, READ_MODELS)
        async with info.context.services.read_engine.connect() as conn:
            view = await get_transfer(conn, str(id))
        if view is None or not await sees_transfer(info.context, view):
            return None
        return Transfer.from_view(view)

    @strawberry.field(description="Transfers, optionally by status or account, in id order.")
    async def transfers(
        self,
        info: Info[Context, None],
        status: TransferStatus | None = None,
        account_id: strawberry.ID | None = None,
        first: int | None = None,
        after: str | None = None,
        consistent_with: str | None = None,
    ) -> Connection[Transfer]:
        size = page_size(first)
        await ensure_consistent(info.context, consistent_with, READ_MODELS)
        wanted = None if status is None else DomainTransferStatus(status.value)
        account = None if account_id is None else str(account_id)
        own = info.context.caller.customer
        if (
            own is not None
            and account is not None
            and not await may_use_account(info.context, account)
        ):
            return connection([], size, lambda v: v.id, Transfer.from_view)
        cursor = decode_cursor(after)
        async with info.context.services.read_engine.connect() as conn:
            rows = await list_transfers(conn, wanted, account, cursor, size + 1, owner_id=own)
        return connection(rows, size, lambda v: v.id, Transfer.from_view)


@strawberry.type
class TransferSubscriptions:
    @strawberry.subscription(description="The transfer now, then after each of its changes.")
    async def transfer_updated(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> AsyncGenerator[Transfer, None]:
        ctx = info.context
        services = ctx.services
        async with services.feed.subscribe() as updates:
            async with services.read_engine.connect() as conn:
                view = await get_transfer(conn, str(id))
            # Another customer's transfer answers as a missing one does, with nothing (an
            # error for it alone would tell that it exists). A transfer not made yet may
            # still become the caller's, so each update of one is checked; one made between
            # accounts not the caller's never is (an account keeps its owner).
            hidden = view is not None and not await sees_transfer(ctx, view)
            if view is not None and not hidden:
                yield Transfer.from_view(view)
            async for event in updates:
                if hidden or event.stream_id != str(id):
                    continue
                await wait_until_caught_up(
                    services.read_engine,
                    READ_MODELS,
                    event.position,
                    services.settings.consistency_timeout_seconds,
                    services.checkpoint_wakeups,
                )
                async with services.read_engine.connect() as conn:
                    view = await get_transfer(conn, str(id))
                if view is not None and await sees_transfer(ctx, view):
                    yield Transfer.from_view(view)
