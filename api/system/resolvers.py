"""systemStatus (where the read models and the relay stand) and rebuildProjection."""

from __future__ import annotations

import uuid
from typing import Annotated

import strawberry
from strawberry.types import Info
from temporalio.common import WorkflowIDConflictPolicy

from adapters.relay_checkpoint import relay_status
from api.access import NotYours
from api.consistency import ensure_consistent
from api.context import Context
from api.errors import Forbidden, InvalidInputPayload, forbidden
from projections import projector
from projections.catalog import find_projection, projection_names
from workflows.followers import RebuildProjectionWorkflow, rebuild_workflow_id


@strawberry.type
class ProjectionStatus:
    name: str
    position: str
    lag: str
    stopped_at: str | None
    error: str | None


@strawberry.type
class RelayStatus:
    position: str
    lag: str


@strawberry.type
class SystemStatus:
    head_position: str
    projections: list[ProjectionStatus]
    relay: RelayStatus


@strawberry.input
class RebuildProjectionInput:
    name: str


@strawberry.type
class ProjectionRebuildStarted:
    projection: str
    workflow_id: str


@strawberry.type
class ProjectionNotFound:
    message: str


RebuildProjectionPayload = Annotated[
    ProjectionRebuildStarted | ProjectionNotFound | Forbidden | InvalidInputPayload,
    strawberry.union("RebuildProjectionPayload"),
]


@strawberry.type
class SystemQueries:
    @strawberry.field(description="Head of the event store; position and lag of every follower.")
    async def system_status(
        self, info: Info[Context, None], consistent_with: str | None = None
    ) -> SystemStatus:
        if info.context.caller.customer is not None:
            raise NotYours("systemStatus")
        await ensure_consistent(info.context, consistent_with, projection_names())
        engine = info.context.services.engine
        statuses = await projector.status(engine, projection_names())
        relay = await relay_status(engine)
        return SystemStatus(
            head_position=str(relay.head),
            projections=[
                ProjectionStatus(
                    name=s.name,
                    position=str(s.position),
                    lag=str(s.lag),
                    stopped_at=None if s.failure is None else str(s.failure.position),
                    error=None if s.failure is None else s.failure.error,
                )
                for s in statuses
            ],
            relay=RelayStatus(position=str(relay.position), lag=str(relay.lag)),
        )


@strawberry.type
class SystemMutations:
    @strawberry.mutation(description="Operator: rebuild a projection while the old one serves.")
    async def rebuild_projection(
        self, info: Info[Context, None], input: RebuildProjectionInput
    ) -> RebuildProjectionPayload:
        ctx = info.context
        if not ctx.caller.is_operator:
            return forbidden()
        if find_projection(input.name) is None:
            known = ", ".join(projection_names())
            return ProjectionNotFound(message=f"no projection {input.name[:80]!r}; known: {known}")
        workflow_id = rebuild_workflow_id(input.name, str(uuid.uuid4()))
        await ctx.services.temporal.start_workflow(
            RebuildProjectionWorkflow.run,
            input.name,
            id=workflow_id,
            task_queue=ctx.services.settings.followers_task_queue(),
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=f"Rebuild projection {input.name}",
        )
        return ProjectionRebuildStarted(projection=input.name, workflow_id=workflow_id)
