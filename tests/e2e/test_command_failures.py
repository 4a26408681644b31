"""A command that fails for neither a rule nor an outage answers CommandFailed over GraphQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.e2e.conftest import COMMAND_ATTEMPTS, Stack
from tests.e2e.test_bank_api import settled
from tests.poison import INSTALL, UNINSTALL

REGISTER = """
mutation($in: RegisterUserInput!) {
  registerUser(input: $in) {
    __typename
    ... on CommandFailed { message correlationId }
    ... on CommandPending { commandId }
  }
}"""


@pytest.fixture
def poisoned_events(stack: Stack) -> Iterator[Stack]:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        for statement in INSTALL:
            conn.execute(statement)
    yield stack
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        for statement in UNINSTALL:
            conn.execute(statement)


def logs_of(stack: Stack) -> str:
    paths = [stack.log_path, *sorted((stack.data_dir / "logs").glob("*.log"))]
    return "\n".join(path.read_text(errors="replace") for path in paths if path.exists())


def test_a_registration_whose_event_the_database_refuses_answers_command_failed(
    poisoned_events: Stack,
) -> None:
    stack = poisoned_events
    marker = uuid.uuid4().hex
    stack.sql("INSERT INTO poison_markers (marker) VALUES (%s) RETURNING marker", marker)
    command_id = str(uuid.uuid4())
    request = {
        "in": {
            "email": f"{marker}@example.com",
            "name": "Poison",
            "password": "secret-pw",
            "commandId": command_id,
        }
    }

    # Sent again with the same id while it is still being retried, as a client would.
    answer = settled(stack, REGISTER, "registerUser", request["in"], within=60)

    assert answer["__typename"] == "CommandFailed", answer
    assert answer["correlationId"] == command_id
    assert "could not be carried out" in answer["message"]
    logs = logs_of(stack)
    # The worker tries it as often as SAGALINE_COMMAND_ATTEMPTS says, then fails it for good.
    last = f"failed on attempt {COMMAND_ATTEMPTS} of {COMMAND_ATTEMPTS}, for good"
    assert f"command {command_id} {last}" in logs
    assert f"command failed (correlation id {command_id}" in logs
    assert stack.sql("SELECT count(*) FROM events WHERE data::text LIKE %s", f"%{marker}%") == 0
