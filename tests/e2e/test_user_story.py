"""The whole story through the API alone, as a client and an operator would live it."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

from tests.e2e.conftest import OPERATOR_TOKEN, Stack
from tests.e2e.test_bank_api import BALANCE, CLOSE, DEPOSIT, OPEN, TRANSFER, payload
from tests.e2e.test_operations_api import AUTHENTICATE

REGISTER = """
mutation($in: RegisterUserInput!) {
  registerUser(input: $in) { __typename ... on UserRegistered { user { id email } position } }
}"""
USER = "query($id: ID!) { user(id: $id) { status } }"
SUSPICIOUS = """
query($id: ID) {
  suspiciousActivities(userId: $id) { edges { node { eventCount windowStart windowEnd } } }
}"""
HISTORY = """
query($id: ID!) { events(streamId: $id, first: 50) { edges { node { version type } } } }"""
UNLOCK = """
mutation($in: UnlockUserInput!) {
  unlockUser(input: $in) { __typename ... on UserUnlocked { user { status } position } }
}"""


def sign_up(stack: Stack, name: str) -> dict[str, Any]:
    email = f"{name.lower()}-{uuid.uuid4()}@example.com"
    data = stack.data(REGISTER, {"in": {"email": email, "name": name, "password": "s3cret-pass"}})
    user: dict[str, Any] = data["registerUser"]["user"]
    return user


def open_with(stack: Stack, owner: str, amount: str) -> str:
    account: str = payload(stack, OPEN, "openAccount", {"in": {"ownerId": owner}})["account"]["id"]
    deposited = payload(
        stack, DEPOSIT, "depositMoney", {"in": {"accountId": account, "amount": amount}}
    )
    assert deposited["__typename"] == "MoneyDeposited"
    return account


def transfer(stack: Stack, source: str, destination: str, amount: str) -> dict[str, Any]:
    variables = {"in": {"fromAccountId": source, "toAccountId": destination, "amount": amount}}
    return payload(stack, TRANSFER, "transferMoney", variables)


def wait_for_status(stack: Stack, user_id: str, status: str) -> None:
    deadline = time.monotonic() + 30
    while stack.data(USER, {"id": user_id})["user"]["status"] != status:
        assert time.monotonic() < deadline, f"user never became {status}"
        time.sleep(0.25)


def test_two_customers_bank_a_thief_is_locked_out_and_an_operator_lets_them_back(
    stack: Stack,
) -> None:
    alice, bob = sign_up(stack, "Alice"), sign_up(stack, "Bob")
    alices, bobs = open_with(stack, alice["id"], "100"), open_with(stack, bob["id"], "20")

    sent = transfer(stack, alices, bobs, "30")
    assert sent["__typename"] == "TransferCompleted"
    at = sent["position"]
    assert stack.data(BALANCE, {"id": alices, "at": at})["account"]["balance"] == "70.00"
    assert stack.data(BALANCE, {"id": bobs, "at": at})["account"]["balance"] == "50.00"

    spare = payload(stack, OPEN, "openAccount", {"in": {"ownerId": bob["id"]}})["account"]["id"]
    assert payload(stack, CLOSE, "closeAccount", {"in": {"accountId": spare}})["__typename"] == (
        "AccountClosed"
    )
    refused = transfer(stack, alices, spare, "10")
    assert refused["__typename"] == "TransferRejected"
    assert refused["transfer"]["steps"][-2:] == [
        "compensated:withdraw",
        "compensated:reserve_daily_limit",
    ]
    assert Decimal(
        stack.data(BALANCE, {"id": alices, "at": refused["position"]})["account"]["balance"]
    ) == Decimal("70.00")

    for _ in range(3):
        wrong = {"in": {"email": alice["email"], "password": "guessing"}}
        assert payload(stack, AUTHENTICATE, "authenticate", wrong)["__typename"] == (
            "AuthenticationFailed"
        )
    wait_for_status(stack, alice["id"], "LOCKED")
    right = {"in": {"email": alice["email"], "password": "s3cret-pass"}}
    assert payload(stack, AUTHENTICATE, "authenticate", right)["__typename"] == "UserLocked"
    locked_out = transfer(stack, alices, bobs, "5")
    assert locked_out["__typename"] == "TransferRejected"
    assert locked_out["reason"] == "UserLocked"
    detected = stack.data(SUSPICIOUS, {"id": alice["id"]})["suspiciousActivities"]["edges"]
    assert detected and detected[0]["node"]["eventCount"] == 3

    unlocked = stack.data(UNLOCK, {"in": {"userId": alice["id"]}}, token=OPERATOR_TOKEN)
    assert unlocked["unlockUser"]["__typename"] == "UserUnlocked"
    assert unlocked["unlockUser"]["user"]["status"] == "ACTIVE"
    assert transfer(stack, alices, bobs, "5")["__typename"] == "TransferCompleted"

    history = [e["node"] for e in stack.data(HISTORY, {"id": alices})["events"]["edges"]]
    assert [n["version"] for n in history] == list(range(1, len(history) + 1))
    assert [n["type"] for n in history][:2] == ["AccountOpened", "MoneyDeposited"]
    assert [n["type"] for n in history].count("TransferRefunded") == 1
