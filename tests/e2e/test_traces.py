"""One trace per mutation: from the API through the saga's workflow and activities, the
appends and the relay's publish, to the Kafka message and complex event processing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer

from tests.e2e.conftest import Stack
from tests.e2e.test_bank_api import TRANSFER, open_account, payload, register
from tests.e2e.test_operations_api import AUTHENTICATE
from tests.e2e.test_user_story import sign_up
from tests.waiting import eventually

TOPIC = "sagaline.events"
TRANSFER_ACTIVITIES = ["begin_reserve_and_withdraw", "deposit_and_complete"]
WITHIN_SECONDS = 60


def spans(stack: Stack) -> Iterator[dict[str, Any]]:
    """Every span the stack's processes exported so far (not a line still being written)."""
    for path in sorted((stack.data_dir / "traces").glob("*.jsonl")):
        for line in path.read_text().split("\n")[:-1]:
            yield json.loads(line)


def trace_of_workflow(stack: Stack, workflow_id: str) -> str | None:
    """The trace id of the span that started the workflow, once it was exported."""
    for span in spans(stack):
        # A transfer is started with its outcome update: StartUpdateWithStartWorkflow:...
        if span["attributes"].get("temporalWorkflowID") == workflow_id and span["name"].startswith(
            ("StartWorkflow:", "StartUpdateWithStartWorkflow:")
        ):
            trace_id: str = span["trace_id"]
            return trace_id
    return None


def traced_names(stack: Stack, trace_id: str) -> dict[str, list[dict[str, Any]]]:
    """The spans of one trace, by name."""
    found: dict[str, list[dict[str, Any]]] = {}
    for span in spans(stack):
        if span["trace_id"] == trace_id:
            found.setdefault(span["name"], []).append(span)
    return found


async def whole_trace(
    stack: Stack, trace_id: str, wanted: set[str]
) -> dict[str, list[dict[str, Any]]]:
    """The trace's spans by name, once it holds every wanted name (spans export in batches)."""
    missing = set(wanted)

    async def exported() -> bool:
        missing.intersection_update(wanted - traced_names(stack, trace_id).keys())
        return not missing

    try:
        await eventually(exported, WITHIN_SECONDS, f"every wanted span in trace {trace_id}")
    except AssertionError as error:
        raise AssertionError(f"{error}; missing {sorted(missing)}") from None
    return traced_names(stack, trace_id)


def transfer(stack: Stack) -> str:
    owner = register(stack)
    source, destination = open_account(stack, owner, "100"), open_account(stack, owner)
    transfer_id = str(uuid.uuid4())
    request = {
        "in": {
            "fromAccountId": source,
            "toAccountId": destination,
            "amount": "12.50",
            "transferId": transfer_id,
        }
    }
    done = payload(stack, TRANSFER, "transferMoney", request)
    assert done["__typename"] == "TransferCompleted", done
    return f"transfer/{transfer_id}"


async def test_one_trace_holds_a_transfer_from_the_api_to_the_kafka_message(
    stack: Stack,
) -> None:
    workflow_id = transfer(stack)
    trace_id: str | None = None

    async def started_in_a_trace() -> bool:
        nonlocal trace_id
        trace_id = trace_of_workflow(stack, workflow_id)
        return trace_id is not None

    await eventually(started_in_a_trace, WITHIN_SECONDS, f"a span starting {workflow_id}")
    assert trace_id is not None
    wanted = {
        "POST /graphql",
        "RunWorkflow:TransferSaga",
        *(f"RunActivity:{name}" for name in TRANSFER_ACTIVITIES),
        "append",
        f"send {TOPIC}",
    }

    trace = await whole_trace(stack, trace_id, wanted)
    (request,) = trace["POST /graphql"]
    assert request["parent_id"] is None and request["service"] == "sagaline-api"
    assert request["attributes"]["http.response.status_code"] == 200
    by_id = {span["span_id"]: span for named in trace.values() for span in named}
    # Every activity of the saga appended, each append inside its activity's span.
    appending = {by_id[span["parent_id"]]["name"] for span in trace["append"]}
    assert {f"RunActivity:{name}" for name in TRANSFER_ACTIVITIES} <= appending
    sends = trace[f"send {TOPIC}"]
    assert {by_id[span["parent_id"]]["name"] for span in sends} <= appending
    # The relay sends, in the followers process.
    assert all(span["service"] == "sagaline-followers" for span in sends)

    headers = await kafka_traceparents(stack, workflow_id, len(TRANSFER_ACTIVITIES))
    send_ids = {span["span_id"] for span in sends}
    for traceparent in headers:
        version, header_trace, parent, flags = traceparent.split("-")
        assert (version, header_trace) == ("00", trace_id)
        assert int(flags, 16) & 1, "sampled"
        assert parent in send_ids
    # The pattern detector skips a transfer's events unread (it watches other types), so
    # the trace ends at the messages; the failed-login test below follows one into it.


async def batch_spans_linking(
    stack: Stack, trace_id: str, send_ids: set[str]
) -> list[dict[str, Any]]:
    """The consumers' `process` spans that link to one of the trace's `send` spans."""
    found: list[dict[str, Any]] = []

    async def processed() -> bool:
        found[:] = [
            span
            for span in spans(stack)
            if span["name"] == f"process {TOPIC}"
            and any(
                link["trace_id"] == trace_id and link["span_id"] in send_ids
                for link in span["links"]
            )
        ]
        return bool(found)

    await eventually(processed, WITHIN_SECONDS, f"a process span linking to trace {trace_id}")
    return found


async def kafka_traceparents(stack: Stack, workflow_id: str, at_least: int) -> list[str]:
    """The `traceparent` headers of the topic's messages for events the workflow appended."""
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=stack.kafka_bootstrap, auto_offset_reset="earliest"
    )
    found: list[str] = []
    await consumer.start()
    try:

        async def read_them() -> bool:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    body = json.loads(record.value or b"{}")
                    if (body.get("metadata") or {}).get("workflow_id") == workflow_id:
                        headers = dict(record.headers)
                        found.append(headers["traceparent"].decode())
            return len(found) >= at_least

        await eventually(read_them, WITHIN_SECONDS, f"{at_least} messages of {workflow_id}")
    finally:
        await consumer.stop()
    return found


async def test_the_lock_that_failed_logins_trigger_is_in_the_trace_of_the_last_login(
    stack: Stack,
) -> None:
    user = sign_up(stack, "Mallory")
    for _ in range(3):
        wrong = {"in": {"email": user["email"], "password": "guessing"}}
        failed = payload(stack, AUTHENTICATE, "authenticate", wrong)
        assert failed["__typename"] == "AuthenticationFailed"
    lock: dict[str, Any] = {}

    async def lock_started_by_detection() -> bool:
        by_id = {span["span_id"]: span for span in spans(stack)}
        for span in by_id.values():
            parent = by_id.get(span["parent_id"] or "")
            if (
                span["name"] == "StartWorkflow:LockUserWorkflow"
                and parent is not None
                and parent["name"] == f"process {TOPIC}"
                and user["id"] in parent["attributes"]["messaging.kafka.message.key"]
            ):
                lock.update(span)
                return True
        return False

    await eventually(lock_started_by_detection, WITHIN_SECONDS, "a lock started by detection")
    wanted = {
        "POST /graphql",
        "RunWorkflow:RecordLoginAttemptWorkflow",
        "RunActivity:record_login_attempt",
        f"send {TOPIC}",
        f"process {TOPIC}",
        "StartWorkflow:LockUserWorkflow",
        "RunWorkflow:LockUserWorkflow",
        "RunActivity:lock_user",
    }

    trace = await whole_trace(stack, lock["trace_id"], wanted)
    (request,) = trace["POST /graphql"]
    assert request["parent_id"] is None
    # The detector handles a fetch of messages as one batch: its `process` span links to the
    # span that sent each message (the messaging conventions for batches).
    send_ids = {span["span_id"] for span in trace[f"send {TOPIC}"]}
    processing = await batch_spans_linking(stack, lock["trace_id"], send_ids)
    assert all(span["service"] == "sagaline-followers" for span in processing)
