"""Wiring of pattern detection: the detector, its consumer and the lock-user starter."""

from __future__ import annotations

import contextlib

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.patterns import (
    PATTERN_CONSUMER,
    LockUserStarter,
    PatternActivities,
    PatternDetector,
)
from adapters.consumer import EventConsumer
from adapters.consumer_metrics import ConsumerMetrics
from adapters.event_store import PostgresEventStore
from domain.patterns import PATTERNS
from domain.users import LockUser
from runtime.config import Settings
from workflows.users import LockUserWorkflow, user_command_workflow_id

LOCK_USER_KIND = "lock-user"


def lock_user_workflow_id(command: LockUser) -> str:
    """The workflow id of a lock command."""
    return user_command_workflow_id(LOCK_USER_KIND, command.command_id)


def lock_user_starter(client: Client, task_queue: str) -> LockUserStarter:
    """Starts LockUserWorkflow once per command id, even after that workflow has closed."""

    async def start(command: LockUser) -> None:
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await client.start_workflow(
                LockUserWorkflow.run,
                command,
                id=lock_user_workflow_id(command),
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )

    return start


def pattern_consumer(
    settings: Settings,
    engine: AsyncEngine,
    detector: PatternDetector,
    group_id: str | None = None,
    metrics: ConsumerMetrics | None = None,
) -> EventConsumer:
    """A consumer of the event topic in the detector's group; outages (Postgres, Temporal
    unreachable) are waited out, as `adapters.outages` tells them."""
    return EventConsumer(
        engine,
        settings.require_kafka_bootstrap(),
        settings.kafka_topic,
        group_id or PATTERN_CONSUMER,
        PATTERN_CONSUMER,
        detector,
        dead_letter_topic=settings.kafka_topic + settings.kafka_dead_letter_suffix,
        partitions=settings.kafka_partitions,
        max_attempts=settings.kafka_consumer_max_attempts,
        session_timeout_ms=settings.kafka_consumer_session_timeout_ms,
        rebalance_timeout_ms=settings.kafka_consumer_session_timeout_ms // 3,
        metrics=metrics,
        event_types=detector.event_types,
    )


def pattern_activities(
    settings: Settings,
    client: Client,
    engine: AsyncEngine,
    store: PostgresEventStore,
    metrics: ConsumerMetrics | None = None,
) -> PatternActivities:
    """The pattern detector's activities, wired to Postgres, Kafka and Temporal."""
    detector = PatternDetector(
        store,
        PATTERNS,
        lock_user_starter(client, settings.temporal_task_queue),
    )
    return PatternActivities(
        engine,
        detector,
        lambda handler: pattern_consumer(settings, engine, handler, metrics=metrics),
        settings.require_database_url(),
    )
