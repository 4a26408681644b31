"""Sign-in, email changes, sagas, the audit history and operator operations over GraphQL."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from tests.e2e.conftest import OPERATOR_TOKEN, Stack
from tests.e2e.test_bank_api import (
    CLOSE,
    COMPENSATED_AFTER_WITHDRAW,
    OPEN,
    TRANSFER,
    balance,
    open_account,
    payload,
)

REGISTER = """
mutation($in: RegisterUserInput!) {
  registerUser(input: $in) { ... on UserRegistered { user { id email } position } }
}"""
AUTHENTICATE = """
mutation($in: AuthenticateInput!) {
  authenticate(input: $in) {
    __typename ... on Authenticated { user { id } } ... on AuthenticationFailed { message }
  }
}"""
CHANGE_EMAIL = """
mutation($in: ChangeUserEmailInput!) {
  changeUserEmail(input: $in) {
    __typename
    ... on UserEmailChanged { user { email version } position }
    ... on EmailAlreadyInUse { message }
    ... on ConcurrencyConflict { message }
    ... on UserNotFound { message }
  }
}"""
UNLOCK = """
mutation($in: UnlockUserInput!) {
  unlockUser(input: $in) { __typename ... on UserNotFound { message } ... on Forbidden { message } }
}"""
RETRY = """
mutation($in: RetrySagaInput!) {
  retrySaga(input: $in) {
    __typename
    ... on SagaRetried { saga { id status } }
    ... on SagaNotRetryable { message }
    ... on SagaNotFound { message }
  }
}"""
SAGA = """
query($id: ID!) {
  saga(id: $id) {
    id type status completedSteps compensations currentStep error temporalUiUrl startedAt closedAt
  }
}"""
EVENTS = """
query($id: ID!, $after: String) {
  events(streamId: $id, first: 1, after: $after) {
    edges { node { position version type data metadata } } pageInfo { hasNextPage endCursor }
  }
}"""
REBUILD = """
mutation($in: RebuildProjectionInput!) {
  rebuildProjection(input: $in) {
    __typename
    ... on ProjectionRebuildStarted { projection workflowId }
    ... on ProjectionNotFound { message }
  }
}"""
STATUS = """
{ systemStatus { headPosition projections { name position lag } relay { position lag } } }"""


def new_user(stack: Stack, password: str = "correct horse") -> dict[str, Any]:
    email = f"{uuid.uuid4()}@example.com"
    data = stack.data(REGISTER, {"in": {"email": email, "name": "Op", "password": password}})
    user: dict[str, Any] = data["registerUser"]["user"]
    return user


def test_sign_in_succeeds_with_the_password_and_every_attempt_is_an_event(stack: Stack) -> None:
    user = new_user(stack)
    good = payload(
        stack,
        AUTHENTICATE,
        "authenticate",
        {"in": {"email": user["email"], "password": "correct horse"}},
    )
    bad = payload(
        stack,
        AUTHENTICATE,
        "authenticate",
        {"in": {"email": user["email"], "password": "wrong one"}},
    )
    nobody = payload(
        stack, AUTHENTICATE, "authenticate", {"in": {"email": "no@example.com", "password": "x"}}
    )
    assert good["__typename"] == "Authenticated" and good["user"]["id"] == user["id"]
    assert bad["__typename"] == nobody["__typename"] == "AuthenticationFailed"
    kinds = stack.sql(
        "SELECT string_agg(type, ',' ORDER BY version) FROM events WHERE stream_id = %s",
        user["id"],
    )
    assert kinds == "UserRegistered,UserLoginSucceeded,UserLoginFailed"


def test_changing_email_checks_uniqueness_and_the_expected_version(stack: Stack) -> None:
    first, second = new_user(stack), new_user(stack)
    taken = payload(
        stack,
        CHANGE_EMAIL,
        "changeUserEmail",
        {"in": {"userId": first["id"], "newEmail": second["email"]}},
    )
    new_email = f"{uuid.uuid4()}@example.com"
    moved = payload(
        stack,
        CHANGE_EMAIL,
        "changeUserEmail",
        {"in": {"userId": first["id"], "newEmail": new_email, "expectedVersion": 1}},
    )
    stale = payload(
        stack,
        CHANGE_EMAIL,
        "changeUserEmail",
        {
            "in": {
                "userId": first["id"],
                "newEmail": f"{uuid.uuid4()}@example.com",
                "expectedVersion": 1,
            }
        },
    )
    assert taken["__typename"] == "EmailAlreadyInUse"
    assert moved["__typename"] == "UserEmailChanged"
    assert moved["user"] == {"email": new_email, "version": 2}
    assert stale["__typename"] == "ConcurrencyConflict"


def test_operator_operations_refuse_client_tokens_and_change_nothing(stack: Stack) -> None:
    user = new_user(stack)
    for query, field, variables in (
        (UNLOCK, "unlockUser", {"in": {"userId": user["id"]}}),
        (RETRY, "retrySaga", {"in": {"sagaId": "whatever"}}),
        (REBUILD, "rebuildProjection", {"in": {"name": "users"}}),
    ):
        answer = stack.data(query, variables)[field]
        assert answer["__typename"] == "Forbidden", field
    # Other tests' work may append meanwhile (the stack is shared): look for these requests'.
    assert stack.sql("SELECT count(*) FROM events WHERE stream_id = %s", user["id"]) == 1
    unknown = stack.data(UNLOCK, {"in": {"userId": "nobody"}}, token=OPERATOR_TOKEN)
    assert unknown["unlockUser"]["__typename"] == "UserNotFound"
    missing = stack.data(RETRY, {"in": {"sagaId": "nope"}}, token=OPERATOR_TOKEN)
    assert missing["retrySaga"]["__typename"] == "SagaNotFound"
    not_found = stack.data(REBUILD, {"in": {"name": "nope"}}, token=OPERATOR_TOKEN)
    assert not_found["rebuildProjection"]["__typename"] == "ProjectionNotFound"


def test_a_completed_transfer_saga_is_visible_and_not_retryable(stack: Stack) -> None:
    owner = new_user(stack)["id"]
    source, destination = open_account(stack, owner, "20"), open_account(stack, owner)
    transfer = payload(
        stack,
        TRANSFER,
        "transferMoney",
        {"in": {"fromAccountId": source, "toAccountId": destination, "amount": "5"}},
    )["transfer"]
    saga = stack.data(SAGA, {"id": transfer["id"]})["saga"]
    assert saga["type"] == "TransferSaga"
    assert saga["status"] == "COMPLETED"
    assert saga["completedSteps"] == [
        "begin",
        "reserve_daily_limit",
        "withdraw",
        "deposit",
        "complete",
    ]
    # The link into the Temporal UI is for operators: a client is not shown the address.
    assert saga["temporalUiUrl"] is None
    as_operator = stack.data(SAGA, {"id": transfer["id"]}, token=OPERATOR_TOKEN)["saga"]
    assert as_operator["temporalUiUrl"].startswith("http://127.0.0.1:")
    assert saga["closedAt"] is not None
    retried = stack.data(RETRY, {"in": {"sagaId": transfer["id"]}}, token=OPERATOR_TOKEN)
    assert retried["retrySaga"]["__typename"] == "SagaNotRetryable"
    assert stack.data(SAGA, {"id": "no-such-saga"})["saga"] is None


@contextlib.contextmanager
def refunds_failing(stack: Stack, account_id: str) -> Iterator[None]:
    """Until the block ends, the database refuses to append a refund to the account."""
    name = sql.Identifier(f"refunds_failing_{uuid.uuid4().hex}")
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql"
                " AS $$ BEGIN RAISE EXCEPTION 'refunds are failing'; END $$"
            ).format(name=name)
        )
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER {name} BEFORE INSERT ON events FOR EACH ROW"
                " WHEN (NEW.type = 'TransferRefunded' AND NEW.stream_id = {account})"
                " EXECUTE FUNCTION {name}()"
            ).format(name=name, account=sql.Literal(account_id))
        )
        try:
            yield
        finally:
            conn.execute(sql.SQL("DROP TRIGGER {name} ON events").format(name=name))
            conn.execute(sql.SQL("DROP FUNCTION {name}()").format(name=name))


def saga_with_status(stack: Stack, saga_id: str, status: str) -> dict[str, Any]:
    """The saga once it has reached `status` (bounded wait)."""
    deadline = time.monotonic() + 30
    while True:
        saga: dict[str, Any] | None = stack.data(SAGA, {"id": saga_id})["saga"]
        if saga is not None and saga["status"] == status:
            return saga
        assert time.monotonic() < deadline, saga
        time.sleep(0.1)


@dataclass(frozen=True)
class IntoClosedAccount:
    """A transfer of 10 from an account holding 30 into a closed account: its deposit is
    refused, so it compensates its withdrawal (and parks while refunds fail)."""

    source: str
    transfer_id: str
    request: dict[str, Any]


def transfer_into_a_closed_account(stack: Stack) -> IntoClosedAccount:
    owner = new_user(stack)["id"]
    source, closed = open_account(stack, owner, "30"), open_account(stack, owner)
    closing = payload(stack, CLOSE, "closeAccount", {"in": {"accountId": closed}})
    assert closing["__typename"] == "AccountClosed"
    transfer_id = str(uuid.uuid4())
    request = {
        "in": {
            "fromAccountId": source,
            "toAccountId": closed,
            "amount": "10",
            "transferId": transfer_id,
        }
    }
    return IntoClosedAccount(source, transfer_id, request)


def test_an_operator_retry_lets_a_parked_transfer_finish_its_compensation(stack: Stack) -> None:
    into_closed = transfer_into_a_closed_account(stack)
    source, transfer_id, request = into_closed.source, into_closed.transfer_id, into_closed.request
    with ThreadPoolExecutor(1) as background:
        with refunds_failing(stack, source):
            first_answer = background.submit(payload, stack, TRANSFER, "transferMoney", request)
            parked = saga_with_status(stack, transfer_id, "NEEDS_ATTENTION")
            head = str(stack.sql("SELECT max(position) FROM events"))
            withdrawn = balance(stack, source, head)
        retried = stack.data(RETRY, {"in": {"sagaId": transfer_id}}, token=OPERATOR_TOKEN)
        first = first_answer.result()

    assert parked["currentStep"] == "compensate withdraw"
    assert parked["compensations"] == []
    assert "refunds are failing" in parked["error"]
    assert withdrawn == Decimal("20.00")
    assert retried["retrySaga"]["__typename"] == "SagaRetried"
    assert retried["retrySaga"]["saga"]["id"] == f"transfer/{transfer_id}"
    assert retried["retrySaga"]["saga"]["status"] == "COMPENSATING"
    assert first["__typename"] in ("TransferRejected", "TransferPending")
    finished = saga_with_status(stack, transfer_id, "COMPENSATED")
    assert finished["compensations"] == ["withdraw", "reserve_daily_limit"]
    again = payload(stack, TRANSFER, "transferMoney", request)
    assert again["__typename"] == "TransferRejected"
    assert again["reason"] == "AccountClosed"
    assert again["transfer"]["steps"] == COMPENSATED_AFTER_WITHDRAW
    assert balance(stack, source, again["position"]) == Decimal("30.00")
    refunds = stack.sql(
        "SELECT count(*) FROM events WHERE stream_id = %s AND type = 'TransferRefunded'", source
    )
    assert refunds == 1


def test_asking_again_about_a_parked_transfer_adds_nothing_to_its_history(stack: Stack) -> None:
    # Only the call that starts a transfer waits on it through an update; calls that find it
    # running wait on its result, so clients that keep asking pile nothing up in Temporal.
    into_closed = transfer_into_a_closed_account(stack)
    with ThreadPoolExecutor(3) as background:
        with refunds_failing(stack, into_closed.source):
            first = background.submit(
                payload, stack, TRANSFER, "transferMoney", into_closed.request
            )
            saga_with_status(stack, into_closed.transfer_id, "NEEDS_ATTENTION")
            again = [
                background.submit(payload, stack, TRANSFER, "transferMoney", into_closed.request)
                for _ in range(2)
            ]
            answers = [first.result()] + [answer.result() for answer in again]
            updates = asyncio.run(updates_in_history(stack, f"transfer/{into_closed.transfer_id}"))
        stack.data(RETRY, {"in": {"sagaId": into_closed.transfer_id}}, token=OPERATOR_TOKEN)
    saga_with_status(stack, into_closed.transfer_id, "COMPENSATED")

    assert [answer["__typename"] for answer in answers] == ["TransferPending"] * 3
    assert updates == {"outcome": 1}


async def updates_in_history(stack: Stack, workflow_id: str) -> dict[str, int]:
    """How many updates of each name the workflow has accepted so far."""
    client = await Client.connect(stack.temporal_address)
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    accepted = [
        event.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    return {name: accepted.count(name) for name in set(accepted)}


def test_the_audit_history_of_an_account_is_in_order_and_paged(stack: Stack) -> None:
    owner = new_user(stack)["id"]
    account = open_account(stack, owner, "10")
    first = stack.data(EVENTS, {"id": account, "after": None})["events"]
    rest = stack.data(EVENTS, {"id": account, "after": first["pageInfo"]["endCursor"]})["events"]
    end = stack.data(EVENTS, {"id": account, "after": rest["pageInfo"]["endCursor"]})["events"]
    nodes = [e["node"] for e in first["edges"] + rest["edges"] + end["edges"]]
    assert [n["type"] for n in nodes] == ["AccountOpened", "MoneyDeposited"]
    assert [n["version"] for n in nodes] == [1, 2]
    assert nodes[1]["data"]["amount"] == "10.00"
    assert nodes[0]["metadata"]["actor"].startswith("client:")
    assert first["pageInfo"]["hasNextPage"] is True
    assert end["edges"] == [] and end["pageInfo"]["hasNextPage"] is False


def test_system_status_reports_every_projection_and_the_relay_catching_up(stack: Stack) -> None:
    owner = new_user(stack)["id"]
    payload(stack, OPEN, "openAccount", {"in": {"ownerId": owner}})
    deadline = time.monotonic() + 20
    while True:
        status = stack.data(STATUS)["systemStatus"]
        if all(p["lag"] == "0" for p in status["projections"]) and status["relay"]["lag"] == "0":
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert {p["name"] for p in status["projections"]} >= {"users", "accounts", "transfers"}
    assert status["relay"]["position"] == status["headPosition"]
    started = stack.data(REBUILD, {"in": {"name": "accounts"}}, token=OPERATOR_TOKEN)
    assert started["rebuildProjection"]["__typename"] == "ProjectionRebuildStarted"
