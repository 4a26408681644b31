"""How the worker polls for workflow tasks: every partition of its task queue has a poll.

A new workflow's first task (for a transfer, usually its only one) lands on one of the task
queue's partitions; with fewer polls of the queue than partitions it waits there until it
is forwarded to a polled one, which was the 12 API clients' latency tail.
"""

from __future__ import annotations

import math
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import PollerBehaviorSimpleMaximum

from adapters.event_store import PostgresEventStore
from runtime.config import Settings
from runtime.worker import STICKY_WORKFLOW_TASK_POLLS, TASK_QUEUE_PARTITIONS, create_worker


async def test_the_task_queue_has_a_poll_per_partition_and_the_sticky_queue_one_of_its_own(
    settings: Settings, client: Client, engine: AsyncEngine, store: PostgresEventStore
) -> None:
    queue = settings.model_copy(update={"temporal_task_queue": f"polling-{uuid.uuid4()}"})

    async with create_worker(queue, client, engine, store) as worker:
        config = worker.config()

    polling = config.get("workflow_task_poller_behavior")
    assert isinstance(polling, PollerBehaviorSimpleMaximum)
    share = config.get("nonsticky_to_sticky_poll_ratio", 0.2)
    # The SDK's split: the task queue gets `share` of the polls, rounded down, the worker's
    # sticky queue the rest, each at least one.
    task_queue_polls = max(1, math.floor(polling.maximum * share))
    sticky_polls = polling.maximum - task_queue_polls
    assert task_queue_polls >= TASK_QUEUE_PARTITIONS
    assert sticky_polls >= STICKY_WORKFLOW_TASK_POLLS
    # Each poll holds a workflow-task slot while it waits: most slots stay for the work.
    slots = config.get("max_concurrent_workflow_tasks")
    assert slots is not None and polling.maximum <= slots // 2
