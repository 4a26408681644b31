"""Activity execution and queue times, recorded by a Temporal worker interceptor.

Put an `ActivityTimes` on the client's interceptors: every worker built on that client then
records each activity attempt. Running it as a script does nothing.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from _support import median
from temporalio import activity
from temporalio import client as temporal_client
from temporalio import worker as temporal_worker


@dataclass(frozen=True)
class ActivityRecord:
    task_queue: str
    activity_type: str
    attempt: int
    queued: float
    """From the attempt's scheduled time (server clock) to the start in the worker, s."""
    executed: float
    """The activity function's own time, s."""


class ActivityTimes(temporal_client.Interceptor, temporal_worker.Interceptor):
    """Records every activity execution of the workers built on the client carrying it."""

    def __init__(self) -> None:
        self.records: list[ActivityRecord] = []

    def intercept_activity(
        self, next: temporal_worker.ActivityInboundInterceptor
    ) -> temporal_worker.ActivityInboundInterceptor:
        return _TimedActivity(next, self.records)


class _TimedActivity(temporal_worker.ActivityInboundInterceptor):
    def __init__(
        self, next: temporal_worker.ActivityInboundInterceptor, records: list[ActivityRecord]
    ) -> None:
        super().__init__(next)
        self._records = records

    async def execute_activity(self, input: temporal_worker.ExecuteActivityInput) -> Any:
        info = activity.info()
        queued = (datetime.now(UTC) - info.current_attempt_scheduled_time).total_seconds()
        started = time.perf_counter()
        try:
            return await self.next.execute_activity(input)
        finally:
            self._records.append(
                ActivityRecord(
                    info.task_queue,
                    info.activity_type,
                    info.attempt,
                    queued,
                    time.perf_counter() - started,
                )
            )


def activity_summary(
    records: list[ActivityRecord], queue: str, workflows: int
) -> dict[str, dict[str, float]]:
    """Per activity type: mean execution and queue time (ms), and attempts beyond the first."""
    by_type: dict[str, list[ActivityRecord]] = defaultdict(list)
    for record in records:
        if record.task_queue == queue:
            by_type[record.activity_type].append(record)
    summary: dict[str, dict[str, float]] = {}
    for name, rows in by_type.items():
        summary[name] = {
            "mean_exec_ms": round(1000 * sum(r.executed for r in rows) / len(rows), 2),
            "p50_exec_ms": round(1000 * median([r.executed for r in rows]), 2),
            "mean_queue_ms": round(1000 * sum(r.queued for r in rows) / len(rows), 2),
            "retries": sum(1 for r in rows if r.attempt > 1),
            "per_workflow": round(len(rows) / workflows, 2),
        }
    return summary


def per_workflow_ms(records: list[ActivityRecord], queue: str, workflows: int) -> dict[str, float]:
    """Summed activity execution and queue time per workflow, ms."""
    rows = [r for r in records if r.task_queue == queue]
    return {
        "activity_exec_ms": round(1000 * sum(r.executed for r in rows) / workflows, 2),
        "activity_queue_ms": round(1000 * sum(r.queued for r in rows) / workflows, 2),
    }


if __name__ == "__main__":
    sys.exit(0)
