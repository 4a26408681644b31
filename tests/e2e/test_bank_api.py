"""Accounts and transfers through the GraphQL API alone, against the whole running stack."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import psycopg

from tests.e2e.conftest import COMMAND_TIMEOUT_SECONDS, Stack

REGISTER = """
mutation($in: RegisterUserInput!) {
  registerUser(input: $in) {
    __typename
    ... on UserRegistered { user { id } position }
    ... on CommandPending { commandId }
  }
}"""
OPEN = """
mutation($in: OpenAccountInput!) {
  openAccount(input: $in) {
    __typename
    ... on AccountOpened { account { id balance currency status version } position }
    ... on UserNotFound { message }
    ... on InvalidInput { field message }
    ... on CommandPending { commandId }
  }
}"""
DEPOSIT = """
mutation($in: DepositMoneyInput!) {
  depositMoney(input: $in) {
    __typename
    ... on MoneyDeposited { account { balance } position }
    ... on AccountNotFound { message }
    ... on AccountClosed { message }
    ... on InvalidInput { field message }
    ... on CommandPending { commandId }
  }
}"""
WITHDRAW = """
mutation($in: WithdrawMoneyInput!) {
  withdrawMoney(input: $in) {
    __typename
    ... on MoneyWithdrawn { account { balance } position }
    ... on InsufficientFunds { message }
  }
}"""
CLOSE = """
mutation($in: CloseAccountInput!) {
  closeAccount(input: $in) {
    __typename
    ... on AccountClosed { message account { status } position }
    ... on BalanceNotZero { message }
  }
}"""
TRANSFER = """
mutation($in: TransferMoneyInput!) {
  transferMoney(input: $in) {
    __typename
    ... on TransferCompleted { transfer { id status steps amount } position }
    ... on TransferRejected { reason message transfer { status steps } position }
    ... on AccountNotFound { message }
    ... on InsufficientFunds { message }
    ... on InvalidInput { field message }
  }
}"""
BALANCE = """
query($id: ID!, $at: String) { account(id: $id, consistentWith: $at) { balance status } }"""
# A transfer's steps after a refusal at the deposit: refunded, then released.
COMPENSATED_AFTER_WITHDRAW = [
    "reserve_daily_limit",
    "withdraw",
    "compensated:withdraw",
    "compensated:reserve_daily_limit",
]


# How long a set-up command may stay pending on a busy machine before a test gives up.
SETTLED_WITHIN_SECONDS = 120


def settled(
    stack: Stack,
    query: str,
    field: str,
    fields: dict[str, Any],
    within: float = SETTLED_WITHIN_SECONDS,
) -> dict[str, Any]:
    """A command's answer once it is not CommandPending, sent again under its commandId
    (the caller's, else a new one) while it is, as a client retries: the command runs once."""
    command = {"commandId": str(uuid.uuid4()), **fields}
    deadline = time.monotonic() + within
    while True:
        answer: dict[str, Any] = stack.data(query, {"in": command})[field]
        if answer["__typename"] != "CommandPending" or time.monotonic() > deadline:
            return answer


def register(stack: Stack) -> str:
    fields = {"email": f"{uuid.uuid4()}@example.com", "name": "Bank", "password": "secret-pw"}
    registered = settled(stack, REGISTER, "registerUser", fields)
    assert registered["__typename"] == "UserRegistered", registered
    user_id: str = registered["user"]["id"]
    return user_id


def open_account(stack: Stack, owner: str, deposit: str | None = None) -> str:
    opened = settled(stack, OPEN, "openAccount", {"ownerId": owner})
    assert opened["__typename"] == "AccountOpened", opened
    account_id: str = opened["account"]["id"]
    if deposit is not None:
        fields = {"accountId": account_id, "amount": deposit}
        result = settled(stack, DEPOSIT, "depositMoney", fields)
        assert result["__typename"] == "MoneyDeposited", result
    return account_id


def balance(stack: Stack, account_id: str, position: str | None = None) -> Decimal:
    data = stack.data(BALANCE, {"id": account_id, "at": position})
    return Decimal(data["account"]["balance"])


def payload(stack: Stack, query: str, field: str, variables: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = stack.data(query, variables)[field]
    return result


def test_an_opened_account_takes_deposits_and_shows_its_balance(stack: Stack) -> None:
    owner = register(stack)
    opened = payload(stack, OPEN, "openAccount", {"in": {"ownerId": owner}})
    assert opened["account"]["balance"] == "0.00"
    assert opened["account"]["currency"] == "EUR"
    account = opened["account"]["id"]
    deposited = payload(
        stack, DEPOSIT, "depositMoney", {"in": {"accountId": account, "amount": "12.5"}}
    )
    assert deposited["account"]["balance"] == "12.50"
    assert balance(stack, account, deposited["position"]) == Decimal("12.50")
    assert stack.sql("SELECT count(*) FROM events WHERE stream_id = %s", account) == 2


def test_a_deposit_held_up_past_the_wait_bound_is_pending_then_completes_once(
    stack: Stack,
) -> None:
    account = open_account(stack, register(stack))
    command_id = str(uuid.uuid4())
    request = {"in": {"accountId": account, "amount": "12.50", "commandId": command_id}}
    # An open transaction holds the account's stream row, which the deposit's append updates.
    with psycopg.connect(stack.database_url) as holder:
        holder.execute("SELECT version FROM streams WHERE stream_id = %s FOR UPDATE", (account,))
        started = time.monotonic()
        pending = payload(stack, DEPOSIT, "depositMoney", request)
        waited = time.monotonic() - started
        deposits_while_held = stack.sql(
            "SELECT count(*) FROM events WHERE stream_id = %s AND type = 'MoneyDeposited'",
            account,
        )

    assert pending == {"__typename": "CommandPending", "commandId": command_id}
    assert waited >= COMMAND_TIMEOUT_SECONDS - 0.5
    assert deposits_while_held == 0
    done = payload(stack, DEPOSIT, "depositMoney", request)
    assert done["__typename"] == "MoneyDeposited"
    assert done["account"]["balance"] == "12.50"
    assert balance(stack, account, done["position"]) == Decimal("12.50")
    assert stack.sql("SELECT count(*) FROM events WHERE stream_id = %s", account) == 2


def test_a_command_id_reused_for_another_command_is_refused_not_answered_as_done(
    stack: Stack,
) -> None:
    account = open_account(stack, register(stack))
    command_id = str(uuid.uuid4())
    first = {"accountId": account, "amount": "10.00", "commandId": command_id}
    done = payload(stack, DEPOSIT, "depositMoney", {"in": first})
    assert done["__typename"] == "MoneyDeposited" and done["account"]["balance"] == "10.00"
    # Another amount under the same id is not a retry: answering MoneyDeposited would report
    # a deposit of 25.00 that never happened.
    other = payload(stack, DEPOSIT, "depositMoney", {"in": {**first, "amount": "25.00"}})
    assert other == {
        "__typename": "InvalidInput",
        "field": "commandId",
        "message": "commandId: was already used by another command",
    }
    # The same request again is a retry, answered as the first time (written as "10" now).
    again = payload(stack, DEPOSIT, "depositMoney", {"in": {**first, "amount": "10"}})
    assert again == done
    assert stack.sql("SELECT count(*) FROM events WHERE stream_id = %s", account) == 2


def test_a_transfer_moves_money_and_repeating_its_id_changes_nothing(stack: Stack) -> None:
    owner = register(stack)
    source, destination = open_account(stack, owner, "100"), open_account(stack, owner)
    transfer_id = str(uuid.uuid4())
    request = {
        "in": {
            "fromAccountId": source,
            "toAccountId": destination,
            "amount": "40.25",
            "transferId": transfer_id,
        }
    }
    first = payload(stack, TRANSFER, "transferMoney", request)
    again = payload(stack, TRANSFER, "transferMoney", request)

    assert first["__typename"] == "TransferCompleted"
    assert first["transfer"]["steps"] == ["reserve_daily_limit", "withdraw", "deposit"]
    assert again == first
    assert balance(stack, source, first["position"]) == Decimal("59.75")
    assert balance(stack, destination, first["position"]) == Decimal("40.25")


def test_a_transfer_to_a_closed_account_is_rejected_after_compensation(stack: Stack) -> None:
    owner = register(stack)
    source, closed = open_account(stack, owner, "50"), open_account(stack, owner)
    closing = payload(stack, CLOSE, "closeAccount", {"in": {"accountId": closed}})
    assert closing["__typename"] == "AccountClosed"
    assert closing["account"]["status"] == "CLOSED"

    rejected = payload(
        stack,
        TRANSFER,
        "transferMoney",
        {"in": {"fromAccountId": source, "toAccountId": closed, "amount": "20"}},
    )

    assert rejected["__typename"] == "TransferRejected"
    assert rejected["reason"] == "AccountClosed"
    assert rejected["transfer"]["status"] == "REJECTED"
    assert rejected["transfer"]["steps"] == COMPENSATED_AFTER_WITHDRAW
    assert balance(stack, source, rejected["position"]) == Decimal("50.00")


def test_expected_failures_are_typed_errors_that_change_nothing(stack: Stack) -> None:
    owner = register(stack)
    account = open_account(stack, owner, "10")
    head = stack.sql("SELECT max(position) FROM events")

    too_much = payload(
        stack, WITHDRAW, "withdrawMoney", {"in": {"accountId": account, "amount": "10.01"}}
    )
    not_empty = payload(stack, CLOSE, "closeAccount", {"in": {"accountId": account}})
    unknown = payload(
        stack,
        TRANSFER,
        "transferMoney",
        {"in": {"fromAccountId": account, "toAccountId": "nope", "amount": "1"}},
    )
    broke = payload(
        stack,
        TRANSFER,
        "transferMoney",
        {
            "in": {
                "fromAccountId": account,
                "toAccountId": open_account(stack, owner),
                "amount": "11",
            }
        },
    )
    assert too_much["__typename"] == "InsufficientFunds"
    assert not_empty["__typename"] == "BalanceNotZero"
    assert unknown["__typename"] == "AccountNotFound"
    assert broke["__typename"] == "InsufficientFunds"
    assert balance(stack, account) == Decimal("10.00")
    for amount in ("-5", "0", "0.001", "NaN", "1e30"):
        invalid = payload(
            stack, DEPOSIT, "depositMoney", {"in": {"accountId": account, "amount": amount}}
        )
        assert (invalid["__typename"], invalid["field"]) == ("InvalidInput", "amount"), amount
    nobody = payload(stack, OPEN, "openAccount", {"in": {"ownerId": "nobody"}})
    assert nobody["__typename"] == "UserNotFound"
    bad_currency = payload(stack, OPEN, "openAccount", {"in": {"ownerId": owner, "currency": "XX"}})
    assert (bad_currency["__typename"], bad_currency["field"]) == ("InvalidInput", "currency")
    assert balance(stack, account) == Decimal("10.00")
    moved = stack.sql(
        "SELECT count(*) FROM events WHERE position > %s AND stream_id = %s"
        " AND type IN ('MoneyWithdrawn', 'MoneyDeposited', 'TransferRefunded', 'AccountClosed')",
        head,
        account,
    )
    assert moved == 0


def test_accounts_are_paged_with_cursors(stack: Stack) -> None:
    owner = register(stack)
    opened = sorted(open_account(stack, owner) for _ in range(3))
    query = """
    query($owner: ID!, $after: String) {
      accounts(ownerId: $owner, first: 2, after: $after) {
        edges { cursor node { id } } pageInfo { hasNextPage endCursor }
      }
    }"""
    first = stack.data(query, {"owner": owner, "after": None})["accounts"]
    second = stack.data(query, {"owner": owner, "after": first["pageInfo"]["endCursor"]})[
        "accounts"
    ]
    assert [e["node"]["id"] for e in first["edges"]] == opened[:2]
    assert first["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["id"] for e in second["edges"]] == opened[2:]
    assert second["pageInfo"]["hasNextPage"] is False


def test_requests_without_a_valid_token_are_refused_and_change_nothing(stack: Stack) -> None:
    email = f"{uuid.uuid4()}@example.com"
    mutation = {
        "query": REGISTER,
        "variables": {"in": {"email": email, "name": "X", "password": "pw-pw-pw-pw"}},
    }
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic e2e"}):
        response = httpx.post(stack.graphql_url, json=mutation, headers=headers, timeout=10)
        assert response.status_code == 401, response.text
    page = httpx.get(stack.graphql_url, headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    # Other tests' work may append meanwhile (the stack is shared): look for this request's.
    assert stack.sql("SELECT count(*) FROM events WHERE data->>'email' = %s", email) == 0
