"""The saga query and the operator's retrySaga mutation."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.context import Context
from api.errors import forbidden
from api.sagas.operations import NoSuchSaga, SagaNotWaiting, read_saga, retry_saga
from api.sagas.types import (
    RetrySagaInput,
    RetrySagaPayload,
    Saga,
    SagaNotFound,
    SagaNotRetryable,
    SagaRetried,
)


@strawberry.type
class SagaQueries:
    @strawberry.field(description="A saga (a transfer's workflow) by transfer or workflow id.")
    async def saga(self, info: Info[Context, None], id: strawberry.ID) -> Saga | None:
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
