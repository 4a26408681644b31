"""`sagaline doctor`'s poller checks, against the session's real Temporal."""

from __future__ import annotations

import uuid

from runtime.config import Settings
from runtime.doctor.findings import Finding
from runtime.doctor.temporal_checks import FOLLOWERS_PROCESS, WORKERS, examine


def finding(findings: list[Finding], check: str) -> Finding:
    return next(f for f in findings if f.check == check)


async def test_unpolled_queues_are_named_with_the_variable_that_sets_each(
    settings: Settings, temporal_address: str
) -> None:
    queues = settings.model_copy(
        update={
            "temporal_task_queue": f"nobody-{uuid.uuid4()}",
            "temporal_followers_task_queue": f"nobody-followers-{uuid.uuid4()}",
        }
    )

    facts = await examine(queues, temporal_address, [], within=10.0)

    workers = finding(facts.findings, WORKERS)
    followers = finding(facts.findings, FOLLOWERS_PROCESS)
    assert workers.is_problem and followers.is_problem
    assert "SAGALINE_TEMPORAL_TASK_QUEUE" in workers.todo
    assert "FOLLOWERS" not in workers.todo
    assert "SAGALINE_TEMPORAL_FOLLOWERS_TASK_QUEUE" in followers.todo
