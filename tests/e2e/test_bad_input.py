"""A hostile client at the input boundary: every argument of every mutation and query, filled
with NUL, lone surrogates, control characters, huge strings, other scripts' digits, JSON
numbers and exponents, is refused as bad input at once: before a command could have waited
out its timeout, and with no workflow behind it. Nothing is started in Temporal, nothing is
appended to the store, and no answer is an internal error."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.client import Client

from tests.e2e.conftest import CLIENT_TOKEN, COMMAND_TIMEOUT_SECONDS, OPERATOR_TOKEN, Stack
from tests.e2e.test_bank_api import balance, open_account, register

ANSWER_WITHIN_SECONDS = float(COMMAND_TIMEOUT_SECONDS)
"""An answer that waited on a workflow takes the command timeout; a refusal at the boundary
takes milliseconds, so the bound tells the two apart on a machine however loaded."""
# The long-running followers; every other workflow is started by a command.
SINGLETONS = frozenset({"RelayWorkflow", "ProjectorWorkflow", "PatternDetectorWorkflow"})

HOSTILE = st.sampled_from(["\x00", "\ud800", "\udfff", "\x01", "\x08", "\x1b", "\x7f", "\x85"])
WHITESPACE = st.sampled_from(["\n", "\t", "\r"])
other_digits = st.text(
    alphabet=st.characters(categories=["Nd"]).filter(lambda c: not c.isascii()),
    min_size=1,
    max_size=6,
)
poisoned = st.builds(
    lambda head, bad, tail: head + bad + tail,
    st.text(max_size=12),
    st.one_of(HOSTILE, WHITESPACE),
    st.text(max_size=12),
)
huge = st.sampled_from([1_025, 20_000, 100_000]).map(lambda n: "x" * n)
bad_text = st.one_of(poisoned, huge)
bad_id = st.one_of(
    bad_text,
    other_digits,
    st.sampled_from(["", "a b", "é", "a\u200bb", "💸", "x" * 201, "a;b", "a'b", "<a>"]),
)
bad_decimal_text = st.one_of(
    other_digits,
    poisoned,
    huge,
    st.builds(lambda m, e: f"{m}E{e:+d}", st.integers(1, 99), st.integers(-3, 3)),
    st.builds(lambda n, pad: f"{pad}{n}{pad}", st.integers(1, 99), st.sampled_from([" ", "\t"])),
    st.sampled_from(
        [
            *("", "-1", "0", "0.00", "1.234", "+5", ".5", "5.", "1,50", "1_000", "0x10"),
            *("NaN", "Infinity", "-Infinity", "1000000000.01", "99999999999", "5 EUR", "1e400"),
        ]
    ),
)
json_numbers = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
)
bad_amount = st.one_of(bad_decimal_text, json_numbers)
bad_position = st.one_of(
    bad_text, other_digits, st.sampled_from(["-1", "1e5", " 5", "5 ", "1.5", "9" * 19, "x"])
)
bad_cursor = st.one_of(
    bad_text,
    st.sampled_from(["!!!", "%%%", "not a cursor"]),
    st.sampled_from(["a\x00b", "é", "a b", "x" * 201, "<a>"]).map(
        lambda key: base64.urlsafe_b64encode(key.encode()).decode()
    ),
)
BAD = {
    "id": bad_id,
    "text": bad_text,
    "amount": bad_amount,
    "position": bad_position,
    "cursor": bad_cursor,
}


@dataclass(frozen=True)
class Operation:
    """One operation: its document, a valid value for each argument, and each one's kind."""

    name: str
    document: str
    valid: dict[str, Any]
    kinds: dict[str, str]
    token: str = CLIENT_TOKEN
    answers_invalid_input: bool = True


def mutation(name: str, input_type: str) -> str:
    return (
        f"mutation($in: {input_type}!) {{ {name}(input: $in) {{ __typename"
        " ... on InvalidInput { field message } } }"
    )


def _new_id() -> str:
    return str(uuid.uuid4())


MUTATIONS = [
    Operation(
        "registerUser",
        mutation("registerUser", "RegisterUserInput"),
        {"email": "ann@example.com", "name": "Ann", "password": "correct horse", "commandId": "c"},
        {"email": "text", "name": "text", "password": "text", "commandId": "id"},
    ),
    Operation(
        "changeUserEmail",
        mutation("changeUserEmail", "ChangeUserEmailInput"),
        {"userId": "u", "newEmail": "ann@example.com", "commandId": "c"},
        {"userId": "id", "newEmail": "text", "commandId": "id"},
    ),
    Operation(
        "authenticate",
        "mutation($in: AuthenticateInput!) { authenticate(input: $in) { __typename } }",
        {"email": "ann@example.com", "password": "correct horse"},
        {"email": "text", "password": "text"},
        answers_invalid_input=False,
    ),
    Operation(
        "openAccount",
        mutation("openAccount", "OpenAccountInput"),
        {"ownerId": "u", "currency": "EUR", "commandId": "c"},
        {"ownerId": "id", "currency": "text", "commandId": "id"},
    ),
    Operation(
        "depositMoney",
        mutation("depositMoney", "DepositMoneyInput"),
        {"accountId": "a", "amount": "5.00", "commandId": "c"},
        {"accountId": "id", "amount": "amount", "commandId": "id"},
    ),
    Operation(
        "withdrawMoney",
        mutation("withdrawMoney", "WithdrawMoneyInput"),
        {"accountId": "a", "amount": "5.00", "commandId": "c"},
        {"accountId": "id", "amount": "amount", "commandId": "id"},
    ),
    Operation(
        "transferMoney",
        mutation("transferMoney", "TransferMoneyInput"),
        {"fromAccountId": "a", "toAccountId": "b", "amount": "5.00", "transferId": "t"},
        {"fromAccountId": "id", "toAccountId": "id", "amount": "amount", "transferId": "id"},
    ),
    Operation(
        "closeAccount",
        mutation("closeAccount", "CloseAccountInput"),
        {"accountId": "a", "commandId": "c"},
        {"accountId": "id", "commandId": "id"},
    ),
    Operation(
        "retrySaga",
        mutation("retrySaga", "RetrySagaInput"),
        {"sagaId": "transfer/t"},
        {"sagaId": "id"},
        token=OPERATOR_TOKEN,
    ),
    Operation(
        "unlockUser",
        mutation("unlockUser", "UnlockUserInput"),
        {"userId": "u", "commandId": "c"},
        {"userId": "id", "commandId": "id"},
        token=OPERATOR_TOKEN,
    ),
    Operation(
        "rebuildProjection",
        mutation("rebuildProjection", "RebuildProjectionInput"),
        {"name": "accounts"},
        {"name": "text"},
        token=OPERATOR_TOKEN,
    ),
]


def query(name: str, arguments: dict[str, str], selection: str) -> str:
    declared = ", ".join(f"${arg}: {graphql_type}" for arg, graphql_type in arguments.items())
    passed = ", ".join(f"{arg}: ${arg}" for arg in arguments)
    return f"query({declared}) {{ {name}({passed}) {selection} }}"


CONNECTION = "{ edges { cursor } }"
QUERIES = [
    Operation(
        "user",
        query("user", {"id": "ID!", "consistentWith": "String"}, "{ id }"),
        {"id": "u"},
        {"id": "id", "consistentWith": "position"},
    ),
    Operation(
        "userByEmail",
        query("userByEmail", {"email": "String!", "consistentWith": "String"}, "{ id }"),
        {"email": "ann@example.com"},
        {"email": "text", "consistentWith": "position"},
    ),
    Operation(
        "users",
        query("users", {"after": "String", "consistentWith": "String"}, CONNECTION),
        {},
        {"after": "cursor", "consistentWith": "position"},
    ),
    Operation(
        "account",
        query("account", {"id": "ID!", "consistentWith": "String"}, "{ id }"),
        {"id": "a"},
        {"id": "id", "consistentWith": "position"},
    ),
    Operation(
        "accounts",
        query("accounts", {"ownerId": "ID", "after": "String"}, CONNECTION),
        {},
        {"ownerId": "id", "after": "cursor"},
    ),
    Operation(
        "transfer",
        query("transfer", {"id": "ID!", "consistentWith": "String"}, "{ id }"),
        {"id": "t"},
        {"id": "id", "consistentWith": "position"},
    ),
    Operation(
        "transfers",
        query("transfers", {"accountId": "ID", "after": "String"}, CONNECTION),
        {},
        {"accountId": "id", "after": "cursor"},
    ),
    Operation(
        "saga",
        query("saga", {"id": "ID!", "consistentWith": "String"}, "{ id }"),
        {"id": "transfer/t"},
        {"id": "id", "consistentWith": "position"},
    ),
    Operation(
        "events",
        query("events", {"streamId": "ID!", "after": "String"}, CONNECTION),
        {"streamId": "s"},
        {"streamId": "id", "after": "cursor"},
    ),
    Operation(
        "suspiciousActivities",
        query("suspiciousActivities", {"userId": "ID", "after": "String"}, CONNECTION),
        {},
        {"userId": "id", "after": "cursor"},
    ),
    Operation(
        "systemStatus",
        query("systemStatus", {"consistentWith": "String"}, "{ headPosition }"),
        {},
        {"consistentWith": "position"},
        token=OPERATOR_TOKEN,
        answers_invalid_input=False,
    ),
]


def _cases(operations: list[Operation]) -> list[Any]:
    return [
        pytest.param(operation, argument, id=f"{operation.name}.{argument}")
        for operation in operations
        for argument in operation.kinds
    ]


HOSTILE_EXAMPLES = settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def post(
    stack: Stack,
    document: str,
    variables: dict[str, Any],
    token: str,
    headers: dict[str, str] | None = None,
    within: float | None = ANSWER_WITHIN_SECONDS,
) -> dict[str, Any]:
    """One request; never an internal error, and answered within `within` seconds if given.

    The body is encoded here, not by httpx, so a lone surrogate travels as its JSON escape.
    """
    started = time.monotonic()
    response = httpx.post(
        stack.graphql_url,
        content=json.dumps({"query": document, "variables": variables}),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            **(headers or {}),
        },
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    for error in body.get("errors") or []:
        assert (error.get("extensions") or {}).get("code") != "INTERNAL_SERVER_ERROR", body
    assert within is None or elapsed < within, f"answered in {elapsed:.2f}s: {body}"
    return body


def head(stack: Stack) -> int:
    position: int = stack.sql("SELECT coalesce(max(position), 0) FROM events")
    return position


def workflows_started_since(stack: Stack, since: datetime) -> list[str]:
    """The command and saga workflows Temporal started after `since`."""

    async def listing() -> list[str]:
        client = await Client.connect(stack.temporal_address)
        started = client.list_workflows(f"StartTime > '{since.isoformat()}'")
        return [
            f"{w.workflow_type} {w.id}" async for w in started if w.workflow_type not in SINGLETONS
        ]

    return asyncio.run(listing())


@pytest.fixture
def nothing_started(stack: Stack) -> Iterator[None]:
    """The test may send anything, but no command or saga workflow may start meanwhile."""
    since = datetime.now(UTC)
    yield
    assert workflows_started_since(stack, since) == []


def assert_bad_user_input(body: dict[str, Any], argument: str) -> None:
    """The answer is a GraphQL error with code BAD_USER_INPUT, and only that."""
    errors = body.get("errors") or []
    codes = {(e.get("extensions") or {}).get("code") for e in errors}
    assert codes == {"BAD_USER_INPUT"}, body


@pytest.mark.usefixtures("nothing_started")
@pytest.mark.parametrize(("operation", "argument"), _cases(MUTATIONS))
@HOSTILE_EXAMPLES
@given(data=st.data())
def test_a_mutation_answers_bad_input_in_any_field_as_invalid_input(
    stack: Stack, operation: Operation, argument: str, data: st.DataObject
) -> None:
    value = data.draw(BAD[operation.kinds[argument]], label=argument)
    variables = {"in": {**operation.valid, argument: value}}
    before = head(stack)
    body = post(stack, operation.document, variables, operation.token)
    if operation.answers_invalid_input:
        answer = body["data"][operation.name]
        assert answer["__typename"] == "InvalidInput", body
        assert answer["field"] == argument, body
    else:
        assert_bad_user_input(body, argument)
    assert head(stack) == before


@pytest.mark.usefixtures("nothing_started")
@pytest.mark.parametrize(("operation", "argument"), _cases(QUERIES))
@HOSTILE_EXAMPLES
@given(data=st.data())
def test_a_query_answers_bad_input_in_any_argument_as_bad_user_input(
    stack: Stack, operation: Operation, argument: str, data: st.DataObject
) -> None:
    value = data.draw(BAD[operation.kinds[argument]], label=argument)
    before = head(stack)
    body = post(stack, operation.document, {**operation.valid, argument: value}, operation.token)
    assert_bad_user_input(body, argument)
    assert head(stack) == before


@pytest.mark.usefixtures("nothing_started")
@pytest.mark.parametrize("position", ["-1", "1e5", "1.5", "9" * 19, "x", "0x10"])
def test_a_bad_consistent_with_header_is_bad_user_input(stack: Stack, position: str) -> None:
    body = post(
        stack,
        "query { systemStatus { headPosition } }",
        {},
        OPERATOR_TOKEN,
        headers={"Consistent-With": position},
    )
    assert_bad_user_input(body, "consistentWith")


PAGED = {
    "users": ({}, {}),
    "accounts": ({}, {}),
    "transfers": ({}, {}),
    "events": ({"streamId": "ID!"}, {"streamId": "s"}),
    "suspiciousActivities": ({}, {}),
}


@pytest.mark.usefixtures("nothing_started")
@pytest.mark.parametrize("name", list(PAGED))
def test_every_connection_refuses_a_page_of_none_and_serves_a_page_of_one(
    stack: Stack, name: str
) -> None:
    # A page of none could only answer "more, after no cursor": refused, as a negative one is.
    arguments, valid = PAGED[name]
    document = query(name, {**arguments, "first": "Int"}, CONNECTION)
    for first in (0, -1):
        body = post(stack, document, {**valid, "first": first}, OPERATOR_TOKEN)
        assert_bad_user_input(body, "first")
    page = post(stack, document, {**valid, "first": 1}, OPERATOR_TOKEN)
    assert not page.get("errors"), page
    assert len(page["data"][name]["edges"]) <= 1


DEPOSIT = (
    "mutation($in: DepositMoneyInput!) { depositMoney(input: $in) { __typename"
    " ... on InvalidInput { field message } ... on MoneyDeposited { account { balance } }"
    " ... on BalanceCeilingExceeded { message } } }"
)


@pytest.mark.usefixtures("nothing_started")
@pytest.mark.parametrize(
    "variables",
    [
        {"accountId": "a\x00b", "amount": "5"},
        {"accountId": "a\ud800b", "amount": "5"},
        {"accountId": "x" * 100_000, "amount": "5"},
        {"accountId": "a", "amount": "١٢٣"},
        {"accountId": "a", "amount": " 5 "},
        {"accountId": "a", "amount": "1E+2"},
        {"accountId": "a", "amount": 0.1},
        {"accountId": "a", "amount": 5},
    ],
    ids=["nul", "surrogate", "huge-id", "arabic-indic", "spaces", "exponent", "float", "int"],
)
def test_the_reported_deposits_are_refused_at_once(stack: Stack, variables: dict[str, Any]) -> None:
    body = post(stack, DEPOSIT, {"in": variables}, CLIENT_TOKEN)
    assert body["data"]["depositMoney"]["__typename"] == "InvalidInput", body


@pytest.mark.usefixtures("nothing_started")
def test_an_amount_written_as_a_number_in_the_document_is_invalid_input(stack: Stack) -> None:
    document = (
        'mutation { depositMoney(input: {accountId: "a", amount: 1E+2}) { __typename'
        " ... on InvalidInput { field } } }"
    )
    answer = post(stack, document, {}, CLIENT_TOKEN)["data"]["depositMoney"]
    assert answer == {"__typename": "InvalidInput", "field": "amount"}


@pytest.mark.usefixtures("nothing_started")
def test_an_address_with_markup_is_not_registered(stack: Stack) -> None:
    variables = {
        "in": {
            "email": "<script>alert(1)</script>@x.com",
            "name": "Mallory",
            "password": "correct horse",
        }
    }
    answer = post(stack, mutation("registerUser", "RegisterUserInput"), variables, CLIENT_TOKEN)
    assert answer["data"]["registerUser"] == {
        "__typename": "InvalidInput",
        "field": "email",
        "message": "email: is not a valid email address",
    }


def test_the_workflow_census_sees_a_command_that_ran(stack: Stack) -> None:
    since = datetime.now(UTC)
    register(stack)
    assert any(w.startswith("RegisterUserWorkflow ") for w in workflows_started_since(stack, since))


def test_no_deposit_takes_a_balance_past_the_ceiling(stack: Stack) -> None:
    account = open_account(stack, register(stack), "999999999.99")
    before = head(stack)
    over = post(
        stack, DEPOSIT, {"in": {"accountId": account, "amount": "0.02"}}, CLIENT_TOKEN, within=None
    )
    assert over["data"]["depositMoney"]["__typename"] == "BalanceCeilingExceeded", over
    assert head(stack) == before
    up_to = post(
        stack, DEPOSIT, {"in": {"accountId": account, "amount": "0.01"}}, CLIENT_TOKEN, within=None
    )
    assert up_to["data"]["depositMoney"] == {
        "__typename": "MoneyDeposited",
        "account": {"balance": "1000000000.00"},
    }


def test_a_transfer_that_would_pass_the_ceiling_is_rejected_and_refunded(stack: Stack) -> None:
    source = open_account(stack, register(stack), "10.00")
    full = open_account(stack, register(stack), "1000000000.00")
    document = (
        "mutation($in: TransferMoneyInput!) { transferMoney(input: $in) { __typename"
        " ... on TransferRejected { reason } } }"
    )
    variables = {"in": {"fromAccountId": source, "toAccountId": full, "amount": "1.00"}}
    answer = post(stack, document, variables, CLIENT_TOKEN, within=None)["data"]["transferMoney"]
    assert answer == {"__typename": "TransferRejected", "reason": "BalanceCeilingExceeded"}
    assert balance(stack, source) == Decimal("10.00")
    assert balance(stack, full) == Decimal("1000000000.00")
