"""Hypothesis throws odd values at every mutation: typed errors or validation errors only,
never an internal error, and a typed error never changes anything."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import CLIENT_TOKEN, OPERATOR_TOKEN, Stack
from tests.e2e.test_bank_api import open_account, register

SUCCESS = {
    "UserRegistered",
    "UserEmailChanged",
    "AccountOpened",
    "MoneyDeposited",
    "MoneyWithdrawn",
    "TransferCompleted",
    "TransferPending",
    "SagaRetried",
    "UserUnlocked",
    "ProjectionRebuildStarted",
    "CommandPending",
}

texts = st.one_of(
    st.text(max_size=40),
    st.text(min_size=300, max_size=2_000),
    st.sampled_from(["", " ", "\x00", "💸", "a@b", "DROP TABLE events;--", "null"]),
)
amounts = st.one_of(
    st.sampled_from(["-1", "0", "0.001", "NaN", "-Infinity", "1e400", "12,50", "", "abc", "٣"]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=30),
    st.integers().map(str),
)
ids = st.one_of(texts, st.uuids().map(str))
maybe_ints = st.one_of(st.none(), st.integers(min_value=-(2**31), max_value=2**31 - 1))


def send(stack: Stack, mutation: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
    response = httpx.post(
        stack.graphql_url,
        json={"query": mutation, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert response.status_code in (200, 400), response.text
    body: dict[str, Any] = response.json()
    for error in body.get("errors") or []:
        assert "correlation id" not in error["message"], body
        assert (error.get("extensions") or {}).get("code") != "INTERNAL_SERVER_ERROR", body
    return body


def check(
    stack: Stack, field: str, mutation: str, variables: dict[str, Any], token: str = CLIENT_TOKEN
) -> None:
    head = stack.sql("SELECT coalesce(max(position), 0) FROM events")
    body = send(stack, mutation, variables, token)
    data = body.get("data") or {}
    payload = data.get(field)
    if payload is None:
        assert body.get("errors"), body
        assert stack.sql("SELECT coalesce(max(position), 0) FROM events") == head
        return
    if payload["__typename"] not in SUCCESS:
        assert payload.get("message"), payload
        assert stack.sql("SELECT coalesce(max(position), 0) FROM events") == head, payload


def mutation(name: str, input_type: str) -> str:
    return (
        f"mutation($in: {input_type}!) {{ {name}(input: $in) {{ __typename"
        " ... on InvalidInput { message field } ... on UserNotFound { message }"
        " ... on AccountNotFound { message } ... on EmailAlreadyInUse { message }"
        " ... on InsufficientFunds { message } ... on BalanceNotZero { message }"
        " ... on AccountClosed { message } ... on TransferRejected { message }"
        " ... on UserLocked { message } ... on ConcurrencyConflict { message }"
        " ... on Forbidden { message } ... on SagaNotFound { message }"
        " ... on SagaNotRetryable { message } ... on ProjectionNotFound { message }"
        " ... on CommandFailed { message }"
        " } }"
    )


FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(email=texts, name=texts, password=texts, command_id=st.one_of(st.none(), texts))
def test_register_user_survives_odd_input(
    stack: Stack, email: str, name: str, password: str, command_id: str | None
) -> None:
    variables = {
        "in": {"email": email, "name": name, "password": password, "commandId": command_id}
    }
    check(stack, "registerUser", mutation("registerUser", "RegisterUserInput"), variables)


@FUZZ
@given(account_id=ids, amount=amounts, command_id=st.one_of(st.none(), texts))
def test_money_movements_survive_odd_input(
    stack: Stack, account_id: str, amount: str, command_id: str | None
) -> None:
    for name, input_type in (
        ("depositMoney", "DepositMoneyInput"),
        ("withdrawMoney", "WithdrawMoneyInput"),
    ):
        variables = {"in": {"accountId": account_id, "amount": amount, "commandId": command_id}}
        check(stack, name, mutation(name, input_type), variables)


@FUZZ
@given(source=ids, destination=ids, amount=amounts, transfer_id=st.one_of(st.none(), texts))
def test_transfers_survive_odd_input(
    stack: Stack, source: str, destination: str, amount: str, transfer_id: str | None
) -> None:
    variables = {
        "in": {
            "fromAccountId": source,
            "toAccountId": destination,
            "amount": amount,
            "transferId": transfer_id,
        }
    }
    check(stack, "transferMoney", mutation("transferMoney", "TransferMoneyInput"), variables)


@FUZZ
@given(owner=ids, currency=st.one_of(st.none(), texts), account_id=ids)
def test_account_lifecycle_survives_odd_input(
    stack: Stack, owner: str, currency: str | None, account_id: str
) -> None:
    check(
        stack,
        "openAccount",
        mutation("openAccount", "OpenAccountInput"),
        {"in": {"ownerId": owner, "currency": currency}},
    )
    check(
        stack,
        "closeAccount",
        mutation("closeAccount", "CloseAccountInput"),
        {"in": {"accountId": account_id}},
    )


@FUZZ
@given(user_id=ids, email=texts, version=maybe_ints, saga=ids, projection=texts)
def test_user_and_operator_operations_survive_odd_input(
    stack: Stack, user_id: str, email: str, version: int | None, saga: str, projection: str
) -> None:
    check(
        stack,
        "changeUserEmail",
        mutation("changeUserEmail", "ChangeUserEmailInput"),
        {"in": {"userId": user_id, "newEmail": email, "expectedVersion": version}},
    )
    check(
        stack,
        "unlockUser",
        mutation("unlockUser", "UnlockUserInput"),
        {"in": {"userId": user_id}},
        OPERATOR_TOKEN,
    )
    check(
        stack,
        "retrySaga",
        mutation("retrySaga", "RetrySagaInput"),
        {"in": {"sagaId": saga}},
        OPERATOR_TOKEN,
    )
    check(
        stack,
        "rebuildProjection",
        mutation("rebuildProjection", "RebuildProjectionInput"),
        {"in": {"name": projection}},
        OPERATOR_TOKEN,
    )


def test_wrong_types_are_validation_errors(stack: Stack) -> None:
    account = open_account(stack, register(stack), "5")
    for variables in (
        {"in": {"accountId": account, "amount": 5}},
        {"in": {"accountId": 12, "amount": "5"}},
        {"in": {"accountId": account}},
        {"in": None},
        {"in": {"accountId": account, "amount": "5", "extra": str(uuid.uuid4())}},
    ):
        check(stack, "depositMoney", mutation("depositMoney", "DepositMoneyInput"), variables)
