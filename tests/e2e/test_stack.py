"""Acceptance of the whole stack: `sagaline up`, then GraphQL over HTTP, Temporal, Kafka."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from tests.e2e.conftest import CLIENT_TOKEN, run_up

if TYPE_CHECKING:
    from tests.e2e.conftest import Stack


TOPIC = "sagaline.events"
PASSWORD = "correct horse battery"

REGISTER_USER = """
mutation RegisterUser($input: RegisterUserInput!) {
  registerUser(input: $input) {
    __typename
    ... on UserRegistered { user { id email name status version registeredAt } position }
    ... on EmailAlreadyInUse { message email }
    ... on InvalidInput { message field }
    ... on CommandPending { message commandId }
  }
}
"""

USER = """
query User($id: ID!, $consistentWith: String) {
  user(id: $id, consistentWith: $consistentWith) { id email name status version registeredAt }
}
"""

USER_BY_EMAIL = """
query UserByEmail($email: String!, $consistentWith: String) {
  userByEmail(email: $email, consistentWith: $consistentWith) {
    id email name status version registeredAt
  }
}
"""


def unique_email() -> str:
    return f"user-{uuid.uuid4().hex}@example.com"


def registration(
    email: str | None = None,
    *,
    name: str = "Ada Lovelace",
    password: str = PASSWORD,
    command_id: str | None = None,
) -> dict[str, Any]:
    """The variables of a registerUser request with unique email and command id by default."""
    return {
        "input": {
            "email": email or unique_email(),
            "name": name,
            "password": password,
            "commandId": command_id or str(uuid.uuid4()),
        }
    }


def register(stack: Stack, variables: dict[str, Any]) -> dict[str, Any]:
    """The registerUser payload."""
    payload: dict[str, Any] = stack.data(REGISTER_USER, variables)["registerUser"]
    return payload


def registered(stack: Stack, variables: dict[str, Any]) -> dict[str, Any]:
    """The payload of a registration that must succeed."""
    payload = register(stack, variables)
    assert payload["__typename"] == "UserRegistered", payload
    return payload


def events_of_command(stack: Stack, variables: dict[str, Any]) -> int:
    """How many events the registration sent with `variables` appended.

    Not the head: the stack is shared, and other tests' work may append meanwhile.
    """
    count: int = stack.sql(
        "SELECT count(*) FROM events WHERE metadata->>'command_id' = %s",
        variables["input"]["commandId"],
    )
    return count


def registrations_with_email(stack: Stack, email: str) -> int:
    count: int = stack.sql(
        "SELECT count(*) FROM events WHERE type = 'UserRegistered' AND data->>'email' = %s",
        email,
    )
    return count


def test_registered_user_is_readable_by_id_and_email_consistent_with_its_position(
    stack: Stack,
) -> None:
    tag = uuid.uuid4().hex
    payload = registered(stack, registration(f"  Grace.{tag}@Example.COM ", name="  Grace Hopper "))

    user = payload["user"]
    email = f"grace.{tag}@example.com"
    assert user["email"] == email
    assert user["name"] == "Grace Hopper"
    assert user["status"] == "ACTIVE"
    assert user["version"] == 1
    assert uuid.UUID(user["id"])
    position = payload["position"]
    assert position.isdigit() and int(position) > 0

    by_id = stack.data(USER, {"id": user["id"], "consistentWith": position})["user"]
    by_email = stack.data(USER_BY_EMAIL, {"email": email, "consistentWith": position})
    assert by_id == user
    assert by_email["userByEmail"] == user


def test_register_user_resent_with_same_command_id_returns_same_user_and_appends_once(
    stack: Stack,
) -> None:
    variables = registration()

    first = registered(stack, variables)
    again = registered(stack, variables)

    assert again["user"]["id"] == first["user"]["id"]
    assert again["position"] == first["position"]
    events = stack.sql(
        "SELECT count(*) FROM events WHERE stream_id = %s AND type = 'UserRegistered'",
        first["user"]["id"],
    )
    assert events == 1
    assert registrations_with_email(stack, variables["input"]["email"]) == 1


def test_register_user_workflow_is_listed_completed_by_the_temporal_ui(stack: Stack) -> None:
    variables = registration()
    registered(stack, variables)
    workflow_id = f"register-user/{variables['input']['commandId']}"
    url = f"{stack.temporal_ui_url}/api/v1/namespaces/default/workflows"

    deadline = time.monotonic() + 15
    while True:
        response = httpx.get(url, params={"query": f'WorkflowId="{workflow_id}"'}, timeout=10)
        assert response.status_code == 200, response.text
        executions = response.json().get("executions") or []
        listed = [e for e in executions if e["execution"]["workflowId"] == workflow_id]
        if listed and listed[0]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED":
            break
        assert time.monotonic() < deadline, f"workflow not listed as completed: {executions}"
        time.sleep(0.5)

    assert len(listed) == 1, listed
    assert listed[0]["type"]["name"] == "RegisterUserWorkflow"


async def test_user_registered_event_is_published_to_kafka_with_cloudevents_headers(
    stack: Stack,
) -> None:
    payload = registered(stack, registration())
    user_id = payload["user"]["id"]
    event_id = str(stack.sql("SELECT event_id FROM events WHERE stream_id = %s", user_id))

    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=stack.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        message = None
        deadline = time.monotonic() + 20
        while message is None and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    if record.key == user_id.encode():
                        message = record
    finally:
        await consumer.stop()

    assert message is not None, f"no message keyed {user_id} on {TOPIC} within 20s"
    headers = {name: value.decode() for name, value in message.headers}
    assert headers["ce_type"] == "UserRegistered"
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_id"] == event_id
    assert headers["ce_source"]
    assert datetime.fromisoformat(headers["ce_time"]).tzinfo is not None
    assert headers["sagaline_stream_version"] == "1"
    assert headers["sagaline_position"] == payload["position"]


@pytest.mark.parametrize(
    ("field", "override"),
    [
        ("email", {"email": "not-an-email"}),
        ("password", {"password": "short"}),
        ("name", {"name": "   "}),
    ],
    ids=["email", "password", "name"],
)
def test_register_user_with_invalid_field_answers_invalid_input_and_appends_nothing(
    stack: Stack, field: str, override: dict[str, str]
) -> None:
    variables = registration()
    variables["input"].update(override)

    payload = register(stack, variables)

    assert payload["__typename"] == "InvalidInput", payload
    assert payload["field"] == field
    assert payload["message"]
    assert events_of_command(stack, variables) == 0
    assert registrations_with_email(stack, variables["input"]["email"]) == 0


def test_register_user_with_taken_email_answers_email_already_in_use_and_appends_nothing(
    stack: Stack,
) -> None:
    email = unique_email()
    first_registration = registration(email, name="First")
    first = registered(stack, first_registration)
    second_registration = registration(email.upper(), name="Second")

    payload = register(stack, second_registration)

    assert payload["__typename"] == "EmailAlreadyInUse", payload
    assert payload["email"] == email
    assert payload["message"]
    assert events_of_command(stack, first_registration) == 1
    assert events_of_command(stack, second_registration) == 0
    assert registrations_with_email(stack, email) == 1
    owner = stack.data(USER_BY_EMAIL, {"email": email})["userByEmail"]
    assert owner["id"] == first["user"]["id"]
    assert owner["name"] == "First"


async def test_concurrent_registrations_of_one_email_register_exactly_one_user(
    stack: Stack,
) -> None:
    email = unique_email()

    headers = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:

        async def attempt(name: str) -> dict[str, Any]:
            response = await client.post(
                stack.graphql_url,
                json={"query": REGISTER_USER, "variables": registration(email, name=name)},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert not body.get("errors"), body
            payload: dict[str, Any] = body["data"]["registerUser"]
            return payload

        payloads = await asyncio.gather(*(attempt(f"Racer {n}") for n in range(5)))

    kinds = sorted(p["__typename"] for p in payloads)
    assert kinds == ["EmailAlreadyInUse"] * 4 + ["UserRegistered"], payloads
    assert registrations_with_email(stack, email) == 1
    winner = next(p for p in payloads if p["__typename"] == "UserRegistered")
    owner = stack.data(USER_BY_EMAIL, {"email": email, "consistentWith": winner["position"]})
    assert owner["userByEmail"]["id"] == winner["user"]["id"]


def test_user_consistent_with_a_non_position_answers_a_graphql_error(stack: Stack) -> None:
    payload = registered(stack, registration())

    body = stack.graphql(USER, {"id": payload["user"]["id"], "consistentWith": "abc"})

    assert body["data"] == {"user": None}
    [error] = body["errors"]
    assert error["path"] == ["user"]
    assert "consistentWith" in error["message"]


def test_user_consistent_with_a_position_past_the_head_is_refused_at_once(
    stack: Stack,
) -> None:
    payload = registered(stack, registration())
    past_head = "999999999999999"

    body = stack.graphql(USER, {"id": payload["user"]["id"], "consistentWith": past_head})

    assert body["data"] == {"user": None}
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert past_head in error["message"]
    # Not waited on: a wait for a position no projection can reach ends as
    # CONSISTENCY_TIMEOUT, not BAD_USER_INPUT. (How soon the refusal comes is checked against
    # the real store in tests/integration/test_consistency_positions.py: over HTTP to a
    # stack of several processes, a busy machine alone can take the stack's 1 s bound.)


def test_second_up_with_the_same_ports_exits_with_status_2_naming_a_port_variable(
    stack: Stack,
) -> None:
    result, elapsed = run_up(stack)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    match = re.fullmatch(
        r"sagaline: port (\d+) on 127\.0\.0\.1 is already in use; "
        r"set (SAGALINE_[A-Z_]+_PORT) to use another port\n",
        result.stderr,
    )
    assert match is not None, result.stderr
    port, variable = match.groups()
    assert stack.env()[variable] == port
    # At once, not after the startup bound: a loaded machine takes seconds just to import.
    assert elapsed < 60
    # The running stack is untouched.
    assert stack.running
    assert stack.data("{ __typename }") == {"__typename": "Query"}


async def test_restarted_stack_still_returns_a_user_registered_before_the_restart(
    stack: Stack,
) -> None:
    """It restarts the session's stack, which stays usable afterwards on the same ports."""
    payload = registered(stack, registration())
    user = payload["user"]

    assert await stack.stop() == 0, stack.log_tail()
    await stack.start()

    assert stack.data(USER, {"id": user["id"]})["user"] == user
