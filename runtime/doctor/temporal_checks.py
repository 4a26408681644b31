"""Checks on Temporal: reachable, the namespace and search attributes exist, workers poll
both task queues, the followers run, and which sagas are parked for an operator."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import PendingActivityState, TaskQueueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from adapters.temporal import PARKED_SAGAS_QUERY, connect, count_parked_sagas
from runtime.config import Settings
from runtime.doctor.findings import Finding, bounded, failure_text, not_checked, ok, problem
from workflows import search_attributes

TEMPORAL = "temporal"
NAMESPACE = "namespace"
SEARCH_ATTRIBUTES = "search attributes"
WORKERS = "workers"
FOLLOWERS_PROCESS = "followers process"
PARKED_SAGAS = "parked sagas"
PARKED_LINKS_SHOWN = 10
POLLER_SEEN_WITHIN_SECONDS = 120.0
"""A worker's long poll lasts about a minute; one not seen for longer has gone."""
START_A_WORKER = "Start a worker (`sagaline worker`, or `sagaline up`)"
START_THE_FOLLOWERS = "Start the followers (`sagaline followers`, or `sagaline up`)"


@dataclass(frozen=True)
class FollowerRun:
    """Whether a follower's workflow runs, and the failure its activity retries after, if any."""

    running: bool
    status: str
    failing: str | None = None
    task_queue: str = ""
    """The task queue of its running workflow."""


@dataclass(frozen=True)
class TemporalFacts:
    """What Temporal says: its findings, and the followers' runs by workflow id if it was asked."""

    findings: list[Finding]
    followers: dict[str, FollowerRun] = field(default_factory=dict)
    unasked_because: str = ""
    """Why the followers were not looked up (empty when they were)."""


async def examine(
    settings: Settings, address: str, follower_ids: list[str], within: float
) -> TemporalFacts:
    """Every Temporal check, and the runs of the followers named by `follower_ids`."""
    namespace = settings.temporal_namespace
    try:
        client = await bounded(connect(address, namespace, wait_seconds=0), within)
    except Exception as error:  # any failure to connect is the finding
        because = "Temporal is not reachable"
        return TemporalFacts(
            [
                problem(
                    TEMPORAL,
                    f"not reachable at {address} ({failure_text(error, within)})",
                    "Start Temporal, or point SAGALINE_TEMPORAL_ADDRESS at it",
                ),
                *(
                    not_checked(name, because)
                    for name in (
                        NAMESPACE,
                        SEARCH_ATTRIBUTES,
                        WORKERS,
                        FOLLOWERS_PROCESS,
                        PARKED_SAGAS,
                    )
                ),
            ],
            unasked_because=because,
        )
    findings = [ok(TEMPORAL, f"reachable at {address}")]
    namespace_found = await _checked(NAMESPACE, _namespace(client, namespace), within)
    findings.append(namespace_found)
    if namespace_found.is_problem:
        because = "the namespace check found a problem"
        findings += [
            not_checked(name, because) for name in (SEARCH_ATTRIBUTES, WORKERS, FOLLOWERS_PROCESS)
        ]
        findings.append(not_checked(PARKED_SAGAS, because))
        return TemporalFacts(findings, unasked_because=because)
    findings.append(
        await _checked(SEARCH_ATTRIBUTES, _search_attributes(client, namespace), within)
    )
    for check, task_queue, start in (
        (
            WORKERS,
            settings.temporal_task_queue,
            START_A_WORKER + ", with the same SAGALINE_TEMPORAL_TASK_QUEUE",
        ),
        (
            FOLLOWERS_PROCESS,
            settings.followers_task_queue(),
            START_THE_FOLLOWERS + ", with the same SAGALINE_TEMPORAL_FOLLOWERS_TASK_QUEUE",
        ),
    ):
        pollers = _pollers(client, namespace, check, task_queue, start)
        findings.append(await _checked(check, pollers, within))
    followers: dict[str, FollowerRun] = {}
    unasked_because = ""
    try:
        for workflow_id in follower_ids:
            followers[workflow_id] = await bounded(_follower(client, workflow_id), within)
    except Exception as error:  # reported beside each follower
        followers = {}
        unasked_because = f"Temporal did not answer ({failure_text(error, within)})"
    findings.append(await _checked(PARKED_SAGAS, _parked(client, settings), within))
    return TemporalFacts(findings, followers, unasked_because)


async def _checked(name: str, check: Awaitable[Finding], within: float) -> Finding:
    """The check's finding; a problem naming the error if Temporal fails or does not answer."""
    try:
        return await bounded(check, within)
    except Exception as error:  # a failing check is a finding, not a crash
        return problem(name, f"Temporal did not answer ({failure_text(error, within)})", "")


async def _namespace(client: Client, namespace: str) -> Finding:
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return problem(
            NAMESPACE,
            f"{namespace} does not exist",
            f"Create it (`temporal operator namespace create {namespace}`),"
            " or set SAGALINE_TEMPORAL_NAMESPACE",
        )
    return ok(NAMESPACE, f"{namespace} exists")


async def _search_attributes(client: Client, namespace: str) -> Finding:
    answer = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    registered = dict(answer.custom_attributes)
    missing = [
        f"{key.name} ({key.indexed_value_type.name})"
        for key in search_attributes.ALL
        if registered.get(key.name) != int(key.indexed_value_type)
    ]
    if missing:
        return problem(
            SEARCH_ATTRIBUTES,
            f"missing or of another type: {', '.join(missing)}",
            "Register each (`temporal operator search-attribute create --name NAME --type TYPE`)",
        )
    names = ", ".join(key.name for key in search_attributes.ALL)
    return ok(SEARCH_ATTRIBUTES, f"registered ({names})")


async def _pollers(
    client: Client, namespace: str, check: str, task_queue: str, start: str
) -> Finding:
    """Whether workers poll the task queue for both workflow and activity tasks."""
    seen_since = time.time() - POLLER_SEEN_WITHIN_SECONDS
    counts: dict[str, int] = {}
    for kind, queue_type in (
        ("workflow", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
        ("activity", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
    ):
        answer = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=queue_type,
            )
        )
        counts[kind] = len(
            {p.identity for p in answer.pollers if p.last_access_time.ToSeconds() >= seen_since}
        )
    if not all(counts.values()):
        idle = " and ".join(kind for kind, count in counts.items() if not count)
        return problem(
            check,
            f"no worker polls task queue {task_queue} for {idle} tasks",
            start,
        )
    return ok(check, f"{max(counts.values())} polling task queue {task_queue}")


async def _follower(client: Client, workflow_id: str) -> FollowerRun:
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return FollowerRun(running=False, status="never started")
    status = described.status
    if status is not WorkflowExecutionStatus.RUNNING:
        name = status.name.lower().replace("_", " ") if status else "unknown"
        return FollowerRun(running=False, status=name)
    task_queue = described.task_queue
    for activity in described.raw_description.pending_activities:
        waiting = activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
        if waiting and activity.attempt > 1 and activity.HasField("last_failure"):
            failure = activity.last_failure.message.strip().splitlines()
            cause = failure[0] if failure else "an unnamed failure"
            return FollowerRun(
                True, "running", f"attempt {activity.attempt} failed: {cause}", task_queue
            )
    return FollowerRun(running=True, status="running", task_queue=task_queue)


async def _parked(client: Client, settings: Settings) -> Finding:
    """Sagas waiting for an operator (NEEDS_ATTENTION), each with its Temporal UI link."""
    count = await count_parked_sagas(client)
    if not count:
        return ok(PARKED_SAGAS, "none")
    links = tuple(
        [
            settings.temporal_workflow_url(execution.id)
            async for execution in client.list_workflows(
                PARKED_SAGAS_QUERY, limit=PARKED_LINKS_SHOWN
            )
        ]
    )
    more = (f"... and {count - len(links)} more",) if count > len(links) else ()
    return problem(
        PARKED_SAGAS,
        f"{count} saga{'s' if count != 1 else ''} NEEDS_ATTENTION (a compensation kept failing)",
        "Fix the cause, then retry each (the retrySaga mutation, as an operator)",
        links + more,
    )
