"""The saga query and the operator's retrySaga mutation."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from api.access import NotYours, sees_transfer_id
from api.consistency import ensure_consistent
from api.context import Context
from api.errors import forbidden
from api.sagas.operations import (
    NoSuchSaga,
    SagaNotWaiting,
    read_saga,
    retry_saga,
    transfer_id_of,
    wait_for_saga_end,
)
from api.sagas.types import (
    RetrySagaInput,
    RetrySagaPayload,
    Saga,
    SagaNotFound,
    SagaNotRetryable,
    SagaRetried,
)
from projections.catalog import projection_names

FINAL_EVENTS = frozenset({"TransferCompleted", "TransferRejected"})


async def saga_visible(ctx: Context, saga_id: str) -> bool:
    """Whether the caller may follow the saga: a customer only its own transfers' sagas,
    from the moment the transfer is sent (not once the read model has it)."""
    return await sees_transfer_id(ctx, transfer_id_of(saga_id))


@strawberry.type
class SagaQueries:
    @strawberry.field(description="A saga (a transfer's workflow) by transfer or workflow id.")
    async def saga(
        self, info: Info[Context, None], id: strawberry.ID, consistent_with: str | None = None
    ) -> Saga | None:
        await ensure_consistent(info.context, consistent_with, projection_names())
        if not await saga_visible(info.context, str(id)):
            return None
        try:
            return await read_saga(info.context, str(id))
        except NoSuchSaga:
            return None


@strawberry.type
class SagaMutations:
    @strawberry.mutation(description="Operator: retry a saga parked as NEEDS_ATTENTION.")
    async def retry_saga(
        self, info: Info[Context, None], input: RetrySagaInput
    ) -> RetrySagaPayload:
        ctx = info.context
        if not ctx.caller.is_operator:
            return forbidden()
        try:
            return SagaRetried(saga=await retry_saga(ctx, str(input.saga_id)))
        except NoSuchSaga:
            return SagaNotFound(message=f"no saga {input.saga_id}")
        except SagaNotWaiting:
            try:
                current = await read_saga(ctx, str(input.saga_id))
            except NoSuchSaga:
                return SagaNotFound(message=f"no saga {input.saga_id}")
            return SagaNotRetryable(
                message=f"saga is {current.status}; only a NEEDS_ATTENTION saga can be retried"
            )


@strawberry.type
class SagaSubscriptions:
    @strawberry.subscription(description="The saga now, then after each event of its transfer.")
    async def saga_updated(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> AsyncGenerator[Saga, None]:
        ctx = info.context
        transfer_id = transfer_id_of(str(id))
        async with ctx.services.feed.subscribe() as updates:
            if not await saga_visible(ctx, str(id)):
                raise NotYours(f"saga {id}")
            try:
                current: Saga | None = await read_saga(ctx, str(id))
            except NoSuchSaga:
                current = None
            if current is not None:
                yield current
            async for event in updates:
                if event.stream_id != transfer_id:
                    continue
                if event.type in FINAL_EVENTS:
                    # The saga closes just after its last event: report it closed.
                    await wait_for_saga_end(ctx, str(id))
                yield await read_saga(ctx, str(id))
