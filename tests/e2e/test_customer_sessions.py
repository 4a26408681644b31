"""Customer sessions: a customer sees and acts on its own things only, until locked."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from runtime.embedded.process import http_answers
from runtime.launcher import LOCALHOST, sagaline_process
from runtime.ports import free_port
from tests.e2e.conftest import (
    CLIENT_TOKEN,
    COMMAND_TIMEOUT_SECONDS,
    OPERATOR_TOKEN,
    STACK_SETTINGS,
    Launch,
    Stack,
)
from tests.e2e.test_bank_api import DEPOSIT, OPEN, TRANSFER
from tests.e2e.test_no_password_hashes import AUTHENTICATE, REGISTER
from tests.e2e.test_subscriptions import open_socket, start
from tests.waiting import eventually

PASSWORD = "a-good-password"
OPEN_WITH_KEY = """
mutation($in: OpenAccountInput!) {
  openAccount(input: $in) { __typename ... on AccountOpened { account { id owner { id } } } }
}"""
READS = """
query($user: ID!, $account: ID!, $transfer: ID!) {
  user(id: $user) { id }
  account(id: $account) { id balance }
  transfer(id: $transfer) { id fromAccount { id } toAccount { id } }
  accounts(ownerId: $user) { edges { node { id } } }
  history: events(streamId: $account) { edges { node { type } } }
  saga(id: $transfer) { id }
}"""
# Sessions from the short-session API: long enough to sign in and open a socket on a loaded
# machine, short enough that a test waits seconds for one to expire.
SHORT_SESSION_TTL_SECONDS = 8
API_READY_WITHIN_SECONDS = 120.0
MINE = """
query($user: ID!, $account: ID!) {
  user(id: $user) { id accounts { id } }
  account(id: $account) { balance }
  users { edges { node { id } } }
  transfers { edges { node { id } } }
  history: events(streamId: $user) { edges { node { type } } }
}"""


@pytest.fixture(scope="module")
async def short_sessions(launch: Launch) -> AsyncIterator[Stack]:
    """The session's stack seen through a second API process whose sessions last seconds.

    It is configured as an operator would run one more `sagaline api` beside a deployment:
    the same database, Temporal, broker, tokens and session key, its own port and data dir,
    and SAGALINE_SESSION_TTL_SECONDS of its own.
    """
    if launch.failure is not None or not launch.stack.running:
        pytest.skip("the e2e stack is not running; see the test that reported it")
    shared = launch.stack
    data_dir = Path(tempfile.mkdtemp(prefix="sagaline-e2e-api-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGALINE_")}
    env.update(
        {
            **STACK_SETTINGS,
            "SAGALINE_DATA_DIR": str(data_dir),
            "SAGALINE_DATABASE_URL": shared.database_url,
            "SAGALINE_TEMPORAL_ADDRESS": shared.temporal_address,
            "SAGALINE_KAFKA_BOOTSTRAP": shared.kafka_bootstrap,
            "SAGALINE_API_HOST": LOCALHOST,
            "SAGALINE_API_PORT": str(port),
            "SAGALINE_SESSION_TTL_SECONDS": str(SHORT_SESSION_TTL_SECONDS),
            "PYTHONUNBUFFERED": "1",
        }
    )
    api = sagaline_process("api", data_dir.with_name(f"{data_dir.name}.log"), env)
    api.start()
    try:
        await api.wait_ready(
            lambda: http_answers(LOCALHOST, port, "/graphql"), within=API_READY_WITHIN_SECONDS
        )
        # The shared stack's helpers, pointed at this API's port.
        view = copy.copy(shared)
        view.ports = dataclasses.replace(shared.ports, api=port)
        yield view
    finally:
        await api.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        api.log_path.unlink(missing_ok=True)


def customer(stack: Stack) -> dict[str, Any]:
    """A registered user with a funded account, signed in: its ids and session token."""
    email = f"c-{uuid.uuid4()}@example.com"
    registered = stack.data(REGISTER, {"in": {"email": email, "name": "C", "password": PASSWORD}})
    user = registered["registerUser"]["user"]["id"]
    account = stack.data(OPEN, {"in": {"ownerId": user}})["openAccount"]["account"]["id"]
    stack.data(DEPOSIT, {"in": {"accountId": account, "amount": "30.00"}})
    signed_in = stack.data(AUTHENTICATE, {"in": {"email": email, "password": PASSWORD}})
    session = signed_in["authenticate"]
    assert session["__typename"] == "Authenticated", session
    assert session["user"]["id"] == user
    return {
        "user": user,
        "account": account,
        "email": email,
        "token": session["token"],
        "expiresAt": session["expiresAt"],
    }


def send_money(stack: Stack, token: str, source: str, destination: str) -> dict[str, Any]:
    variables = {"in": {"fromAccountId": source, "toAccountId": destination, "amount": "5.00"}}
    answer: dict[str, Any] = stack.data(TRANSFER, variables, token)["transferMoney"]
    return answer


def test_a_session_reads_its_own_user_accounts_transfers_and_history(stack: Stack) -> None:
    ann, bob = customer(stack), customer(stack)
    sent = send_money(stack, ann["token"], ann["account"], bob["account"])
    assert sent["__typename"] == "TransferCompleted", sent
    mine = stack.data(MINE, {"user": ann["user"], "account": ann["account"]}, ann["token"])
    assert mine["user"]["accounts"] == [{"id": ann["account"]}]
    assert mine["account"]["balance"] == "25.00"
    assert [e["node"]["id"] for e in mine["users"]["edges"]] == [ann["user"]]
    assert [e["node"]["id"] for e in mine["transfers"]["edges"]] == [sent["transfer"]["id"]]
    assert mine["history"]["edges"][0]["node"]["type"] == "UserRegistered"
    # Bob sees the transfer that reached him, but not Ann's account it came from.
    theirs = stack.data(
        READS,
        {"user": bob["user"], "account": bob["account"], "transfer": sent["transfer"]["id"]},
        bob["token"],
    )
    assert theirs["transfer"]["fromAccount"] is None
    assert theirs["transfer"]["toAccount"] == {"id": bob["account"]}


def test_another_customers_user_account_transfer_history_and_saga_read_as_missing(
    stack: Stack,
) -> None:
    ann, bob, carol = customer(stack), customer(stack), customer(stack)
    sent = send_money(stack, ann["token"], ann["account"], bob["account"])
    variables = {"user": ann["user"], "account": ann["account"], "transfer": sent["transfer"]["id"]}
    seen = stack.data(READS, variables, carol["token"])
    assert seen["user"] is None and seen["account"] is None and seen["transfer"] is None
    assert seen["saga"] is None
    assert seen["accounts"]["edges"] == [] and seen["history"]["edges"] == []
    for stream in (ann["user"], sent["transfer"]["id"]):
        history = "query($id: ID!) { events(streamId: $id) { edges { node { type } } } }"
        assert stack.data(history, {"id": stream}, carol["token"])["events"]["edges"] == []
    by_email = stack.data(
        "query($e: String!) { userByEmail(email: $e) { id } }", {"e": ann["email"]}, carol["token"]
    )
    assert by_email["userByEmail"] is None


def test_the_histories_a_transfer_reaches_do_not_name_its_sender(stack: Stack) -> None:
    ann, bob = customer(stack), customer(stack)
    sent = send_money(stack, ann["token"], ann["account"], bob["account"])
    history = "query($id: ID!) { events(streamId: $id) { edges { node { type metadata } } } }"
    for stream in (sent["transfer"]["id"], bob["account"]):
        seen = stack.data(history, {"id": stream}, bob["token"])["events"]["edges"]
        assert seen, f"Bob sees no history of {stream}"
        # Bob is never shown Ann's user (it reads as null to him), nor is it in the metadata.
        assert ann["user"] not in json.dumps(seen), seen
    # Ann's own history still says that she acted.
    own = stack.data(history, {"id": sent["transfer"]["id"]}, ann["token"])["events"]["edges"]
    assert own[0]["node"]["metadata"]["actor"] == f"customer:{ann['user']}"


REFUSAL = """
query($id: ID!) {
  transfer(id: $id) { status reason }
  saga(id: $id) { error }
  events(streamId: $id) { edges { node { type data } } }
}"""


def test_the_receiver_of_a_refused_transfer_is_not_told_the_senders_balance(
    stack: Stack,
) -> None:
    ann, bob = customer(stack), customer(stack)
    transfer_id = f"t-{uuid.uuid4()}"
    variables = {
        "in": {
            "fromAccountId": ann["account"],
            "toAccountId": bob["account"],
            "amount": "1000.00",
            "transferId": transfer_id,
        }
    }
    refused = stack.data(TRANSFER, variables, ann["token"])["transferMoney"]
    assert refused["__typename"] == "InsufficientFunds", refused
    # The sender reads its own balance in the reason; the receiver reads why, not how much.
    # The event keeps the refusal's facts, hidden from the receiver as the reason is.
    facts = {"kind": "InsufficientFunds", "account_id": ann["account"]}
    for who, told, figures in (
        (ann, "has 30.00, cannot withdraw 1000.00", {"balance": "30.00", "amount": "1000.00"}),
        (bob, "has (hidden), cannot", {"balance": "(hidden)", "amount": "(hidden)"}),
    ):
        seen = stack.data(REFUSAL, {"id": transfer_id}, who["token"])
        rejected = [
            e["node"]["data"]
            for e in seen["events"]["edges"]
            if e["node"]["type"] == "TransferRejected"
        ]
        assert seen["transfer"]["status"] == "REJECTED"
        assert [data["details"] for data in rejected] == [{**facts, **figures}], rejected
        reasons = [seen["transfer"]["reason"], seen["saga"]["error"], rejected[0]["reason"]]
        assert all(told in reason for reason in reasons), (who, reasons)
        if who is bob:
            assert not any("30.00" in reason for reason in reasons), reasons


def test_a_customer_cannot_move_or_touch_another_customers_money(stack: Stack) -> None:
    ann, bob = customer(stack), customer(stack)
    token = bob["token"]
    stolen = send_money(stack, token, ann["account"], bob["account"])
    assert stolen["__typename"] == "AccountNotFound"
    withdraw = """mutation($in: WithdrawMoneyInput!) { withdrawMoney(input: $in) { __typename } }"""
    taken = stack.data(withdraw, {"in": {"accountId": ann["account"], "amount": "1.00"}}, token)
    assert taken["withdrawMoney"]["__typename"] == "AccountNotFound"
    opened = stack.data(OPEN, {"in": {"ownerId": ann["user"]}}, token)
    assert opened["openAccount"]["__typename"] == "UserNotFound"
    change = (
        """mutation($in: ChangeUserEmailInput!) { changeUserEmail(input: $in) { __typename } }"""
    )
    moved = stack.data(
        change, {"in": {"userId": ann["user"], "newEmail": f"x-{uuid.uuid4()}@example.com"}}, token
    )
    assert moved["changeUserEmail"]["__typename"] == "UserNotFound"
    balance = "query($id: ID!) { account(id: $id) { balance } }"
    assert stack.data(balance, {"id": ann["account"]})["account"]["balance"] == "30.00"


def test_operator_feeds_and_status_are_refused_to_a_session(stack: Stack) -> None:
    ann = customer(stack)
    body = stack.graphql("{ systemStatus { headPosition } }", token=ann["token"])
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    unlock = """mutation($in: UnlockUserInput!) { unlockUser(input: $in) { __typename } }"""
    answer = stack.data(unlock, {"in": {"userId": ann["user"]}}, ann["token"])
    assert answer["unlockUser"]["__typename"] == "Forbidden"


def test_a_session_cannot_introspect_the_schema_nor_get_field_names_suggested(
    stack: Stack,
) -> None:
    ann = customer(stack)
    schema = "{ __schema { mutationType { fields { name } } } }"
    refused = stack.graphql(schema, token=ann["token"])
    assert "data" not in refused or refused["data"] is None, refused
    assert "introspection has been disabled" in refused["errors"][0]["message"]
    typo = stack.graphql("{ systemStatu { headPosition } }", token=ann["token"])
    assert typo["errors"][0]["message"] == "Cannot query field 'systemStatu' on type 'Query'."
    # An operator (GraphiQL) and a client back end keep both.
    for token in (OPERATOR_TOKEN, CLIENT_TOKEN):
        fields = stack.data(schema, token=token)["__schema"]["mutationType"]["fields"]
        assert "unlockUser" in {field["name"] for field in fields}
        hinted = stack.graphql("{ systemStatu { headPosition } }", token=token)
        assert "Did you mean 'systemStatus'?" in hinted["errors"][0]["message"]


async def first_message(stack: Stack, token: str, query: str, variables: dict[str, Any]) -> Any:
    socket = await open_socket(stack, {"token": token})
    try:
        await start(socket, query, variables)
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), 20))
            if message["type"] not in ("ping", "pong"):
                return message
    finally:
        await socket.close()


async def test_subscriptions_to_another_customers_things_are_refused(stack: Stack) -> None:
    ann, bob = customer(stack), customer(stack)
    sent = send_money(stack, ann["token"], ann["account"], bob["account"])
    carol = customer(stack)
    for query, variables in (
        ("subscription($id: ID!) { sagaUpdated(id: $id) { id } }", {"id": sent["transfer"]["id"]}),
        ("subscription($id: ID) { eventAppended(streamId: $id) { type } }", {"id": ann["account"]}),
        ("subscription { eventAppended { type } }", {}),
    ):
        message = await first_message(stack, carol["token"], query, variables)
        assert message["type"] == "error" or message["payload"].get("errors"), (query, message)
    own = await first_message(
        stack,
        ann["token"],
        "subscription($id: ID!) { transferUpdated(id: $id) { id status } }",
        {"id": sent["transfer"]["id"]},
    )
    assert own["payload"]["data"]["transferUpdated"]["status"] == "COMPLETED"


async def test_another_customers_transfer_is_followed_as_a_missing_one_is(stack: Stack) -> None:
    ann, bob, carol = customer(stack), customer(stack), customer(stack)
    theirs = send_money(stack, ann["token"], ann["account"], bob["account"])["transfer"]["id"]
    follow = "subscription($id: ID!) { transferUpdated(id: $id) { id status } }"
    operations = {
        "theirs": (follow, {"id": theirs}),
        "missing": (follow, {"id": str(uuid.uuid4())}),
        "own": (
            "subscription($id: ID) { eventAppended(streamId: $id) { type } }",
            {"id": carol["account"]},
        ),
    }
    socket = await open_socket(stack, {"token": carol["token"]})
    messages: list[Any] = []
    try:
        for name, (query, variables) in operations.items():
            payload = {"query": query, "variables": variables}
            await socket.send(json.dumps({"id": name, "type": "subscribe", "payload": payload}))
        # A command of carol's own, through its workflow, takes far longer than reading a
        # transfer: whatever the other two answer at once arrives before this deposit's event.
        deposit = {"in": {"accountId": carol["account"], "amount": "1.00"}}
        await asyncio.to_thread(stack.data, DEPOSIT, deposit)
        while not any(message.get("id") == "own" for message in messages):
            message = json.loads(await asyncio.wait_for(socket.recv(), 20))
            if message["type"] not in ("ping", "pong"):
                messages.append(message)
    finally:
        await socket.close()
    # Neither the other customer's transfer nor the missing one answers anything.
    assert [message["id"] for message in messages] == ["own"], messages


FOLLOW_SAGA = "subscription($id: ID!) { sagaUpdated(id: $id) { id status } }"
SAGA_AND_HISTORY = """
query($id: ID!) { saga(id: $id) { id } events(streamId: $id) { edges { node { type } } } }"""


@contextlib.contextmanager
def transfers_read_model_held(stack: Stack) -> Iterator[None]:
    """The transfers read model cannot take any change until the block ends: its table is
    locked against writes (reads go on), so its projector waits, as a lagging one would."""
    with psycopg.connect(stack.database_url) as holder:
        holder.execute("LOCK TABLE transfers IN SHARE MODE")
        try:
            yield
        finally:
            holder.rollback()


def refusal(message: Any, saga_id: str) -> Any:
    """A refused subscription's errors, with the id they name taken out."""
    payload = message["payload"]
    errors = payload if message["type"] == "error" else payload.get("errors")
    assert errors, message
    return json.loads(json.dumps(errors).replace(saga_id, "<id>"))


async def test_a_customer_follows_its_own_transfer_before_the_read_model_has_it(
    stack: Stack,
) -> None:
    ann, bob, carol = customer(stack), customer(stack), customer(stack)
    known = "SELECT count(*) FROM transfers WHERE id = %s"
    with transfers_read_model_held(stack):
        sent = await asyncio.to_thread(
            send_money, stack, ann["token"], ann["account"], bob["account"]
        )
        transfer_id = sent["transfer"]["id"]
        assert stack.sql(known, transfer_id) == 0, "the read model has the transfer already"
        # The sender and the receiver both follow its saga, and read it and its history.
        for own in (ann, bob):
            message = await first_message(stack, own["token"], FOLLOW_SAGA, {"id": transfer_id})
            assert message["type"] == "next", message
            assert not message["payload"].get("errors"), message
            assert message["payload"]["data"]["sagaUpdated"]["id"] == f"transfer/{transfer_id}"
            seen = await asyncio.to_thread(
                stack.data, SAGA_AND_HISTORY, {"id": transfer_id}, own["token"]
            )
            assert seen["saga"] == {"id": f"transfer/{transfer_id}"}, seen
            assert seen["events"]["edges"][0]["node"]["type"] == "TransferRequested", seen
        # Someone else's saga is refused exactly as one that does not exist is.
        missing = str(uuid.uuid4())
        answers = []
        for saga_id in (transfer_id, missing):
            message = await first_message(stack, carol["token"], FOLLOW_SAGA, {"id": saga_id})
            answers.append((message["type"], refusal(message, saga_id)))
            seen = await asyncio.to_thread(
                stack.data, SAGA_AND_HISTORY, {"id": saga_id}, carol["token"]
            )
            assert seen == {"saga": None, "events": {"edges": []}}, seen
        assert answers[0] == answers[1]
        assert answers[0][1][0]["extensions"]["code"] == "FORBIDDEN", answers
        assert stack.sql(known, transfer_id) == 0, "the read model caught up while held"


def httpx_status(stack: Stack, token: str) -> int:
    """The HTTP status of a small query made with a token."""
    response = httpx.post(
        stack.graphql_url,
        json={"query": "{ users { edges { node { id } } } }"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    return response.status_code


def test_a_session_ends_when_it_expires_or_is_forged(short_sessions: Stack) -> None:
    stack = short_sessions
    ann = customer(stack)
    body, _, _ = ann["token"].rpartition(".")
    assert httpx_status(stack, f"{body}.AAAA") == 401
    expires_at = datetime.fromisoformat(ann["expiresAt"])
    remaining = (expires_at - datetime.now(UTC)).total_seconds()
    assert 0 < remaining <= SHORT_SESSION_TTL_SECONDS
    deadline = time.monotonic() + remaining + 30
    while httpx_status(stack, ann["token"]) != 401:
        assert time.monotonic() < deadline, "the session outlived its expiry"
        time.sleep(0.5)
    assert datetime.now(UTC) >= expires_at


def test_locking_a_user_revokes_its_sessions(stack: Stack) -> None:
    ann = customer(stack)
    assert httpx_status(stack, ann["token"]) == 200
    for _ in range(3):
        stack.data(AUTHENTICATE, {"in": {"email": ann["email"], "password": "wrong-password"}})
    deadline = time.monotonic() + 30
    while httpx_status(stack, ann["token"]) != 401:
        assert time.monotonic() < deadline, "the locked user's session still works"
        time.sleep(0.25)
    status = "query($id: ID!) { user(id: $id) { status } }"
    assert stack.data(status, {"id": ann["user"]}, OPERATOR_TOKEN)["user"]["status"] == "LOCKED"

    # An unlock lets the user sign in again, but the session from before the lock stays revoked.
    unlock = "mutation($in: UnlockUserInput!) { unlockUser(input: $in) { __typename } }"
    unlocked = stack.data(unlock, {"in": {"userId": ann["user"]}}, OPERATOR_TOKEN)["unlockUser"]
    assert unlocked["__typename"] == "UserUnlocked", unlocked
    deadline = time.monotonic() + 30
    while stack.data(status, {"id": ann["user"]}, OPERATOR_TOKEN)["user"]["status"] != "ACTIVE":
        assert time.monotonic() < deadline, "the unlock never reached the read model"
        time.sleep(0.25)
    again = stack.data(AUTHENTICATE, {"in": {"email": ann["email"], "password": PASSWORD}})
    fresh = again["authenticate"]["token"]
    assert httpx_status(stack, fresh) == 200
    assert httpx_status(stack, ann["token"]) == 401, "a session from before the lock came back"


def seconds_to_fail_signing_in(stack: Stack, email: str) -> float:
    """How long a sign-in with a wrong password takes to be refused."""
    started = time.monotonic()
    answer = stack.data(AUTHENTICATE, {"in": {"email": email, "password": "wrong-password"}})
    took = time.monotonic() - started
    assert answer["authenticate"]["__typename"] == "AuthenticationFailed", answer
    return took


def test_a_wrong_password_is_refused_without_waiting_for_its_attempt_to_be_recorded(
    stack: Stack,
) -> None:
    # Waiting for the attempt's workflow would tell a registered address from an unknown
    # one (which has no attempt to record) by the time taken. With the user's stream row
    # held, that workflow cannot append: the refusal must come anyway, well inside the
    # command bound it would otherwise wait out, and the attempt is recorded once released.
    ann = customer(stack)
    failed = "SELECT count(*) FROM events WHERE stream_id = %s AND type = 'UserLoginFailed'"
    with psycopg.connect(stack.database_url) as holder:
        holder.execute(
            "SELECT version FROM streams WHERE stream_id = %s FOR UPDATE", (ann["user"],)
        )
        took = seconds_to_fail_signing_in(stack, ann["email"])
        recorded_while_held = stack.sql(failed, ann["user"])
    # Waiting on the held workflow would take the whole command bound; anything under it is
    # the refusal's own work (a scrypt check, on a busy machine, can take seconds).
    assert took < COMMAND_TIMEOUT_SECONDS, took
    assert recorded_while_held == 0
    deadline = time.monotonic() + 30
    while stack.sql(failed, ann["user"]) != 1:
        assert time.monotonic() < deadline, "the attempt was never recorded"
        time.sleep(0.1)


def test_a_locked_user_is_told_so_only_with_the_right_password(stack: Stack) -> None:
    ann = customer(stack)
    for _ in range(3):
        seconds_to_fail_signing_in(stack, ann["email"])
    status = "query($id: ID!) { user(id: $id) { status } }"
    deadline = time.monotonic() + 30
    while stack.data(status, {"id": ann["user"]})["user"]["status"] != "LOCKED":
        assert time.monotonic() < deadline, "the user was never locked"
        time.sleep(0.25)
    # A guess learns nothing from the lock (an unknown address is never locked).
    seconds_to_fail_signing_in(stack, ann["email"])
    right = stack.data(AUTHENTICATE, {"in": {"email": ann["email"], "password": PASSWORD}})
    assert right["authenticate"]["__typename"] == "UserLocked", right


def test_reusing_another_customers_idempotency_keys_shows_nothing_of_theirs(
    stack: Stack,
) -> None:
    ann, bob = customer(stack), customer(stack)
    key = f"key-{uuid.uuid4()}"
    opened = stack.data(
        OPEN_WITH_KEY, {"in": {"ownerId": ann["user"], "commandId": key}}, ann["token"]
    )
    anns = opened["openAccount"]["account"]
    assert anns["owner"]["id"] == ann["user"]
    # Bob sends Ann's key: he gets an account of his own, never hers.
    reused = stack.data(
        OPEN_WITH_KEY, {"in": {"ownerId": bob["user"], "commandId": key}}, bob["token"]
    )
    bobs = reused["openAccount"]["account"]
    assert bobs["owner"]["id"] == bob["user"] and bobs["id"] != anns["id"]

    transfer_id = f"t-{uuid.uuid4()}"
    sent = {"fromAccountId": ann["account"], "toAccountId": bob["account"], "amount": "5.00"}
    first = stack.data(TRANSFER, {"in": {**sent, "transferId": transfer_id}}, ann["token"])
    assert first["transferMoney"]["__typename"] == "TransferCompleted", first
    # Carol sends Ann's transferId from her own account: Ann's transfer is not shown to her.
    carol = customer(stack)
    mine = {"fromAccountId": carol["account"], "toAccountId": ann["account"], "amount": "1.00"}
    joined = stack.data(TRANSFER, {"in": {**mine, "transferId": transfer_id}}, carol["token"])
    assert joined["transferMoney"]["__typename"] == "AccountNotFound", joined
    balance = "query($id: ID!) { account(id: $id) { balance } }"
    assert stack.data(balance, {"id": carol["account"]})["account"]["balance"] == "30.00"


def test_a_transfer_id_reused_for_another_transfer_is_refused_not_answered_as_done(
    stack: Stack,
) -> None:
    ann, bob, carol = customer(stack), customer(stack), customer(stack)
    transfer_id = f"t-{uuid.uuid4()}"
    # Bob claims the id first, with a transfer that reaches Ann (so she may see it).
    bobs = {"fromAccountId": bob["account"], "toAccountId": ann["account"], "amount": "3.00"}
    first = stack.data(TRANSFER, {"in": {**bobs, "transferId": transfer_id}}, bob["token"])
    assert first["transferMoney"]["__typename"] == "TransferCompleted", first
    # Ann pays Carol under the same id: that is not a retry of Bob's transfer, so it must
    # not answer TransferCompleted (Carol was never paid), nor move any money.
    anns = {"fromAccountId": ann["account"], "toAccountId": carol["account"], "amount": "7.00"}
    reused = stack.data(TRANSFER, {"in": {**anns, "transferId": transfer_id}}, ann["token"])
    answer = reused["transferMoney"]
    assert answer["__typename"] == "InvalidInput", answer
    assert answer["field"] == "transferId"
    # A client token reusing its own id with another amount is refused the same way, while a
    # true retry (the same transfer again) still answers the first result.
    again = stack.data(TRANSFER, {"in": {**bobs, "transferId": transfer_id}})
    assert again["transferMoney"]["__typename"] == "TransferCompleted", again
    other = stack.data(TRANSFER, {"in": {**bobs, "amount": "4.00", "transferId": transfer_id}})
    assert other["transferMoney"]["__typename"] == "InvalidInput", other
    balance = "query($id: ID!) { account(id: $id) { balance } }"
    balances = [
        stack.data(balance, {"id": who["account"]})["account"]["balance"]
        for who in (ann, bob, carol)
    ]
    assert balances == ["33.00", "27.00", "30.00"]


ACCOUNT_FEED = "subscription($id: ID) { eventAppended(streamId: $id) { type data } }"


async def as_operator(stack: Stack, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """An operator's request that must not fail (async, so open sockets keep being served)."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            stack.graphql_url,
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
        )
    body: dict[str, Any] = response.json()
    assert not body.get("errors"), body
    return body["data"]


async def until_closed(socket: ClientConnection, within: float) -> tuple[int | None, list[Any]]:
    """The close code the server ended the socket with, and every message before it."""
    messages: list[Any] = []
    try:
        async with asyncio.timeout(within):
            while True:
                messages.append(json.loads(await socket.recv()))
    except ConnectionClosed as closed:
        return (None if closed.rcvd is None else closed.rcvd.code), messages
    except TimeoutError:
        raise AssertionError(f"the socket was still open after {within} s: {messages}") from None


def deposits(messages: list[Any]) -> list[str]:
    """The amounts of the MoneyDeposited events among a feed's messages."""
    events = [m["payload"]["data"]["eventAppended"] for m in messages if m["type"] == "next"]
    return [e["data"]["amount"] for e in events if e["type"] == "MoneyDeposited"]


async def test_locking_a_user_closes_its_open_subscriptions(stack: Stack) -> None:
    ann = customer(stack)
    socket = await open_socket(stack, {"token": ann["token"]})
    await start(socket, ACCOUNT_FEED, {"id": ann["account"]})
    try:

        async def streams() -> bool:
            deposit = {"in": {"accountId": ann["account"], "amount": "1.00"}}
            await as_operator(stack, DEPOSIT, deposit)
            try:
                message = json.loads(await asyncio.wait_for(socket.recv(), 2))
            except TimeoutError:
                return False
            return bool(message["type"] == "next")

        await eventually(streams, 30, "the subscription streams while the session holds")
        for _ in range(3):
            wrong = {"in": {"email": ann["email"], "password": "wrong-password"}}
            await as_operator(stack, AUTHENTICATE, wrong)
        status = "query($id: ID!) { user(id: $id) { status } }"

        async def locked() -> bool:
            user = (await as_operator(stack, status, {"id": ann["user"]}))["user"]
            return bool(user["status"] == "LOCKED")

        await eventually(locked, 30, "three failed logins lock the user")
        await as_operator(stack, DEPOSIT, {"in": {"accountId": ann["account"], "amount": "2.00"}})
        code, messages = await until_closed(socket, 30)
    finally:
        await socket.close()
    assert code == 4403
    assert "2.00" not in deposits(messages), "the locked user's subscription kept streaming"


async def test_a_subscription_is_closed_when_its_session_expires(short_sessions: Stack) -> None:
    stack = short_sessions
    ann = customer(stack)
    expires_at = datetime.fromisoformat(ann["expiresAt"])
    socket = await open_socket(stack, {"token": ann["token"]})
    await start(socket, ACCOUNT_FEED, {"id": ann["account"]})
    try:
        remaining = (expires_at - datetime.now(UTC)).total_seconds()
        code, _ = await until_closed(socket, remaining + 15)
    finally:
        await socket.close()
    assert code == 4401
    assert datetime.now(UTC) >= expires_at


async def test_a_transfer_id_naming_another_customers_account_opens_nothing_of_it(
    stack: Stack,
) -> None:
    ann, bob, carol = customer(stack), customer(stack), customer(stack)
    # Carol sends money from her own account under a transferId that is Ann's account id.
    variables = {
        "in": {
            "fromAccountId": carol["account"],
            "toAccountId": bob["account"],
            "amount": "1.00",
            "transferId": ann["account"],
        }
    }
    body = await asyncio.to_thread(stack.graphql, TRANSFER, variables, carol["token"])
    assert not body.get("errors"), body
    # The id is bad input, answered at once: no saga starts under it.
    assert body["data"]["transferMoney"] == {
        "__typename": "InvalidInput",
        "field": "transferId",
        "message": "transferId: is in use by another stream; choose another",
    }
    # Ann's account stays closed to Carol, as a missing id is.
    missing = str(uuid.uuid4())
    answers = []
    for stream_id in (ann["account"], missing):
        message = await first_message(stack, carol["token"], FOLLOW_SAGA, {"id": stream_id})
        answers.append((message["type"], refusal(message, stream_id)))
        seen = await asyncio.to_thread(
            stack.data, SAGA_AND_HISTORY, {"id": stream_id}, carol["token"]
        )
        assert seen == {"saga": None, "events": {"edges": []}}, seen
    assert answers[0] == answers[1]
