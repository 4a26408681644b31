"""GraphQL types of sagas, as Temporal sees them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from api.errors import Forbidden, InvalidInputPayload


@strawberry.type(description="A saga's progress, read from its Temporal workflow.")
class Saga:
    id: strawberry.ID
    type: str
    status: str
    current_step: str | None
    completed_steps: list[str]
    compensations: list[str]
    error: str | None
    started_at: datetime | None
    closed_at: datetime | None
    temporal_ui_url: str | None = strawberry.field(
        description="The saga's workflow in the Temporal UI; operators only (null for others)."
    )


@strawberry.input
class RetrySagaInput:
    saga_id: strawberry.ID


@strawberry.type
class SagaRetried:
    saga: Saga


@strawberry.type
class SagaNotFound:
    message: str


@strawberry.type(description="Only a saga parked as NEEDS_ATTENTION can be retried.")
class SagaNotRetryable:
    message: str


RetrySagaPayload = Annotated[
    SagaRetried | SagaNotFound | SagaNotRetryable | Forbidden | InvalidInputPayload,
    strawberry.union("RetrySagaPayload"),
]
