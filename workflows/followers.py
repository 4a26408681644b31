"""Singleton followers of the global order: the relay and one projector per projection.

Each is a workflow with a fixed id on the followers' task queue (`sagaline followers`, not the
sagas' worker); its activity runs a heartbeating loop for a few minutes and returns, and the
workflow starts it again (continuing as new, on the same queue, when history grows). If its
followers process dies, the heartbeat times out within seconds and the activity resumes in
another one.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.following import FollowInput
    from activities.projections import PROJECTION_NOT_FOUND, ProjectInput, ProjectionActivities
    from activities.relay import RelayActivities

RUN_SECONDS = 300.0
# A follower never gives up, so its policy names no non-retryable error: an outage is waited
# out, and an event a projection cannot apply is parked by the projector, not retried here.
FOLLOWER_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=[],
)
# A rebuild of a projection that does not exist would fail the same way every time.
REBUILD_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=[PROJECTION_NOT_FOUND],
)
HEARTBEAT = timedelta(seconds=3)
"""A follower heartbeats every half second; three seconds without one means its worker died."""
RUNS_PER_HISTORY = 50

RELAY_WORKFLOW_ID = "relay"


def projector_workflow_id(projection: str) -> str:
    """The fixed id of a projection's projector workflow."""
    return f"projector/{projection}"


@workflow.defn
class RelayWorkflow:
    """Keeps the relay activity running forever, on whichever worker is alive."""

    @workflow.run
    async def run(self) -> None:
        for _ in range(RUNS_PER_HISTORY):
            await workflow.execute_activity_method(
                RelayActivities.relay_events,
                FollowInput(RUN_SECONDS),
                start_to_close_timeout=timedelta(seconds=RUN_SECONDS + 60),
                heartbeat_timeout=HEARTBEAT,
                retry_policy=FOLLOWER_RETRY,
            )
        workflow.continue_as_new()


@workflow.defn
class ProjectorWorkflow:
    """Keeps one projection's projector activity running forever."""

    @workflow.run
    async def run(self, projection: str) -> None:
        for _ in range(RUNS_PER_HISTORY):
            await workflow.execute_activity_method(
                ProjectionActivities.project_events,
                ProjectInput(projection, RUN_SECONDS),
                start_to_close_timeout=timedelta(seconds=RUN_SECONDS + 60),
                heartbeat_timeout=HEARTBEAT,
                retry_policy=FOLLOWER_RETRY,
            )
        workflow.continue_as_new(projection)


REBUILD_WORKFLOW_PREFIX = "rebuild-projection/"


def rebuild_workflow_id(projection: str, request_id: str) -> str:
    """The workflow id of one rebuild of a projection."""
    return f"{REBUILD_WORKFLOW_PREFIX}{projection}/{request_id}"


def rebuilt_projection(workflow_id: str) -> str | None:
    """The projection a rebuild's workflow id names; None for another id."""
    if not workflow_id.startswith(REBUILD_WORKFLOW_PREFIX):
        return None
    projection, slash, _ = workflow_id.removeprefix(REBUILD_WORKFLOW_PREFIX).rpartition("/")
    return projection if slash and projection else None


@workflow.defn
class RebuildProjectionWorkflow:
    """Rebuilds one projection from position 0 while the live one keeps serving."""

    @workflow.run
    async def run(self, projection: str) -> int:
        return await workflow.execute_activity_method(
            ProjectionActivities.rebuild_projection,
            projection,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=REBUILD_RETRY,
        )
