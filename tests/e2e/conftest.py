"""The whole stack, started as `sagaline up` would be, for GraphQL-over-HTTP tests."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from runtime.embedded.process import ComponentStartError
from runtime.launcher import PROJECT_ROOT, StackPorts, UpProcess, sagaline_command

# Short, so a `consistentWith` that can never be reached fails fast.
CONSISTENCY_TIMEOUT_SECONDS = 1
# How long a mutation waits for its workflow: well above a command's usual fraction of a
# second, and below an activity's 10 s timeout, so a test can hold a command up past it.
COMMAND_TIMEOUT_SECONDS = 5
# A failing compensation parks its saga after two attempts (about half a second), not eight.
COMPENSATION_ATTEMPTS = 2
# A command failing for neither a rule nor an outage answers after two attempts, not five.
COMMAND_ATTEMPTS = 2
# Long enough for a test to use a session on a loaded machine (the tests that wait for one
# to expire ask an API of their own with a shorter one: test_customer_sessions.py).
SESSION_TTL_SECONDS = 30
CLIENT_TOKEN = "e2e-client-token"
OPERATOR_TOKEN = "e2e-operator-token"
# Set rather than left to `up`, so that another API process can share it.
SESSION_KEY = "e2e-session-key-that-signs-every-customer-session"
STACK_SETTINGS = {
    "SAGALINE_CONSISTENCY_TIMEOUT_SECONDS": str(CONSISTENCY_TIMEOUT_SECONDS),
    "SAGALINE_COMMAND_TIMEOUT_SECONDS": str(COMMAND_TIMEOUT_SECONDS),
    "SAGALINE_COMPENSATION_ATTEMPTS": str(COMPENSATION_ATTEMPTS),
    "SAGALINE_COMMAND_ATTEMPTS": str(COMMAND_ATTEMPTS),
    "SAGALINE_API_TOKENS": f"{CLIENT_TOKEN}:client,{OPERATOR_TOKEN}:operator",
    "SAGALINE_SESSION_KEY": SESSION_KEY,
    "SAGALINE_SESSION_TTL_SECONDS": str(SESSION_TTL_SECONDS),
    # Spans go to <data dir>/traces/<role>.jsonl (test_traces.py reads them).
    "SAGALINE_TRACING": "true",
}


def run_up(stack: UpProcess) -> tuple[subprocess.CompletedProcess[str], float]:
    """`sagaline up` in the stack's environment, run to its exit; the result and seconds."""
    started = time.monotonic()
    result = subprocess.run(
        sagaline_command("up"),
        cwd=PROJECT_ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    return result, time.monotonic() - started


class Stack(UpProcess):
    """A `sagaline up` subprocess with every component embedded, with helpers for tests."""

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, token: str = CLIENT_TOKEN
    ) -> dict[str, Any]:
        """POST a GraphQL request as a caller and return the whole body (data and errors)."""
        response = httpx.post(
            self.graphql_url,
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def data(
        self, query: str, variables: dict[str, Any] | None = None, token: str = CLIENT_TOKEN
    ) -> dict[str, Any]:
        """The `data` of a GraphQL response that must have no errors."""
        body = self.graphql(query, variables, token)
        assert not body.get("errors"), body
        data: dict[str, Any] = body["data"]
        return data

    def sql(self, statement: str, *params: object) -> Any:
        """The first column of the first row of a query against the embedded Postgres."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(statement, params).fetchone()
        assert row is not None
        return row[0]


@dataclass
class Launch:
    """The session's stack, or why it did not start and which test reported that."""

    stack: Stack
    failure: str | None = None
    reported_by: str | None = None


@pytest.fixture(scope="session")
async def launch() -> AsyncIterator[Launch]:
    """The session's stack, started the first time a test needs it and stopped at the end.

    Never raises: a stack that cannot start is reported once, by the `stack` fixture. The
    data dir is under /tmp, not pytest's 0700 tmp_path: embedded Postgres runs as an
    unprivileged account and must be able to traverse to its data.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="sagaline-e2e-"))
    launched = Launch(Stack(data_dir, StackPorts.free(), settings=STACK_SETTINGS))
    try:
        await launched.stack.start()
    except Exception as error:
        launched.failure = str(error) if isinstance(error, ComponentStartError) else repr(error)
    try:
        yield launched
    finally:
        await launched.stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        launched.stack.log_path.unlink(missing_ok=True)


@pytest.fixture
def stack(launch: Launch, request: pytest.FixtureRequest) -> Stack:
    """The running stack shared by every e2e test.

    The first test to find it not running fails with the reason; the tests after it are
    skipped, pointing at that failure, rather than each failing the same way.
    """
    if launch.failure is None and not launch.stack.running:
        launch.failure = f"`sagaline up` is no longer running:\n{launch.stack.log_tail()}"
    if launch.failure is not None:
        if launch.reported_by is not None:
            pytest.skip(f"the e2e stack is not running; see {launch.reported_by}")
        launch.reported_by = request.node.nodeid
        pytest.fail(f"the e2e stack is not running: {launch.failure}", pytrace=False)
    return launch.stack
