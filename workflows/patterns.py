"""The pattern detector singleton: complex event processing over the event topic."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.followers import FOLLOWER_RETRY, HEARTBEAT, RUN_SECONDS, RUNS_PER_HISTORY

with workflow.unsafe.imports_passed_through():
    from activities.following import FollowInput
    from activities.patterns import PatternActivities

PATTERN_DETECTOR_WORKFLOW_ID = "pattern-detector"


@workflow.defn
class PatternDetectorWorkflow:
    """Keeps the pattern detector's consumer running forever, on whichever worker is alive."""

    @workflow.run
    async def run(self) -> None:
        for _ in range(RUNS_PER_HISTORY):
            await workflow.execute_activity_method(
                PatternActivities.detect_patterns,
                FollowInput(RUN_SECONDS),
                start_to_close_timeout=timedelta(seconds=RUN_SECONDS + 60),
                heartbeat_timeout=HEARTBEAT,
                retry_policy=FOLLOWER_RETRY,
            )
        workflow.continue_as_new()
