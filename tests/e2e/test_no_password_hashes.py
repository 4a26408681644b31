"""No password hash leaves the write side: not in events, Temporal histories, Kafka,
subscriptions or answers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer
from temporalio.client import Client
from websockets.asyncio.client import ClientConnection

from tests.e2e.conftest import OPERATOR_TOKEN, Stack
from tests.e2e.test_bank_api import DEPOSIT, OPEN, TRANSFER
from tests.e2e.test_subscriptions import open_socket, start
from tests.waiting import eventually
from workflows.users import register_user_workflow_id

REGISTER = """
mutation($in: RegisterUserInput!) {
  registerUser(input: $in) { __typename ... on UserRegistered { user { id } position } }
}"""
AUTHENTICATE = """
mutation($in: AuthenticateInput!) {
  authenticate(input: $in) {
    __typename ... on Authenticated { user { id email } token expiresAt }
    ... on AuthenticationFailed { message } ... on UserLocked { message }
  }
}"""
HISTORY = """
query($id: ID!) {
  events(streamId: $id, first: 100) { edges { node { type data metadata } } }
}"""
USER = "query($id: ID!) { user(id: $id) { id email name status version accounts { id } } }"
TOPIC = "sagaline.events"


def answered(stack: Stack, answers: list[str], query: str, variables: dict[str, Any]) -> Any:
    body = stack.graphql(query, variables, OPERATOR_TOKEN)
    answers.append(json.dumps(body))
    assert not body.get("errors"), body
    return body["data"]


async def messages_of(stack: Stack, streams: dict[str, int], within: float = 60) -> list[bytes]:
    """Every message on the topic until each stream's `streams[id]` events were seen."""
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=stack.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    seen = dict.fromkeys(streams, 0)
    values: list[bytes] = []
    try:
        async with asyncio.timeout(within):
            while any(seen[s] < n for s, n in streams.items()):
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    for message in batch:
                        values.append(message.value or b"")
                        key = (message.key or b"").decode()
                        if key in seen:
                            seen[key] += 1
    finally:
        await consumer.stop()
    return values


async def temporal_histories(stack: Stack, workflow_id: str, aggregate_id: str) -> bytes:
    """The recorded events of the workflow and of every one listed for the aggregate."""
    client = await Client.connect(stack.temporal_address)
    histories = [await client.get_workflow_handle(workflow_id).fetch_history()]
    async for execution in client.list_workflows(f"AggregateIds = '{aggregate_id}'"):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        histories.append(await handle.fetch_history())
    return b"".join(event.SerializeToString() for h in histories for event in h.events)


async def until_live(stack: Stack, feed: ClientConnection) -> None:
    """Wait (bounded) until the whole store's feed delivers a probe user's registration: the
    subscription is live, and the story's events from now on reach it."""

    async def delivers() -> bool:
        email = f"probe-{uuid.uuid4()}@example.com"
        variables = {"in": {"email": email, "name": "Probe", "password": "a-good-password"}}
        probe = stack.data(REGISTER, variables)["registerUser"]["user"]["id"]
        try:
            async with asyncio.timeout(5):
                while True:
                    message = json.loads(await feed.recv())
                    event = message.get("payload", {}).get("data", {}).get("eventAppended")
                    if event and event["streamId"] == probe:
                        return True
        except TimeoutError:
            return False

    await eventually(delivers, 60, "the subscription delivers newly appended events")


async def test_a_whole_user_story_leaks_no_password_hash_anywhere(stack: Stack) -> None:
    feed = await open_socket(stack, {"token": OPERATOR_TOKEN})
    await start(feed, "subscription { eventAppended { streamId type data metadata } }", {})
    await until_live(stack, feed)
    answers: list[str] = []
    email, password = f"leak-{uuid.uuid4()}@example.com", "a-good-password"
    command_id = f"leak-{uuid.uuid4()}"
    registration = {"email": email, "name": "Leak", "password": password, "commandId": command_id}
    user = answered(stack, answers, REGISTER, {"in": registration})["registerUser"]["user"]["id"]
    other = answered(
        stack,
        answers,
        REGISTER,
        {"in": {"email": f"o-{uuid.uuid4()}@example.com", "name": "O", "password": password}},
    )["registerUser"]["user"]["id"]
    signed_in = answered(
        stack, answers, AUTHENTICATE, {"in": {"email": email, "password": password}}
    )
    assert signed_in["authenticate"]["__typename"] == "Authenticated"
    accounts = []
    for owner in (user, other):
        opened = answered(stack, answers, OPEN, {"in": {"ownerId": owner}})["openAccount"]
        accounts.append(opened["account"]["id"])
    answered(stack, answers, DEPOSIT, {"in": {"accountId": accounts[0], "amount": "50.00"}})
    moved = answered(
        stack,
        answers,
        TRANSFER,
        {"in": {"fromAccountId": accounts[0], "toAccountId": accounts[1], "amount": "20.00"}},
    )
    assert moved["transferMoney"]["__typename"] == "TransferCompleted"
    for _ in range(3):
        wrong = {"in": {"email": email, "password": "not-the-password"}}
        answered(stack, answers, AUTHENTICATE, wrong)
    deadline = time.monotonic() + 30
    while answered(stack, answers, USER, {"id": user})["user"]["status"] != "LOCKED":
        assert time.monotonic() < deadline, "three failed logins never locked the user"
        await asyncio.sleep(0.25)
    transfer_id = moved["transferMoney"]["transfer"]["id"]
    for stream in (user, other, *accounts, transfer_id):
        answered(stack, answers, HISTORY, {"id": stream})

    password_hash = stack.sql("SELECT password_hash FROM user_credentials WHERE user_id = %s", user)
    assert password_hash.startswith("scrypt$")

    def clean(text: str) -> bool:
        return password_hash not in text and "password_hash" not in text

    # The event log, the read models and the snapshots.
    assert (
        stack.sql("SELECT count(*) FROM events WHERE data::text LIKE %s", f"%{password_hash}%") == 0
    )
    assert stack.sql("SELECT count(*) FROM events WHERE data ? 'password_hash'") == 0
    assert stack.sql("SELECT count(*) FROM snapshots WHERE state::text LIKE %s", "%password%") == 0
    assert (
        stack.sql(
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'password_hash'"
            " AND table_name NOT IN ('user_credentials', 'held_credentials')"
        )
        == 0
    )
    # The hash held for the registration went to user_credentials with its event.
    assert stack.sql("SELECT count(*) FROM held_credentials WHERE user_id = %s", user) == 0
    # Every Temporal history of the user's commands (what the Temporal UI shows): inputs,
    # results, failures, in any payload.
    recorded = await temporal_histories(stack, register_user_workflow_id(command_id), user)
    assert email.encode() in recorded
    assert password_hash.encode() not in recorded
    assert password.encode() not in recorded
    # Every query and mutation answer.
    assert all(clean(answer) for answer in answers)
    # Every Kafka message, once the relay has published all of the story's streams.
    counts = {
        s: stack.sql("SELECT count(*) FROM events WHERE stream_id = %s", s)
        for s in (user, other, *accounts, transfer_id)
    }
    values = await messages_of(stack, counts)
    assert values and all(clean(value.decode()) for value in values)
    # Every subscription message, up to the user's last event.
    last_type = stack.sql(
        "SELECT type FROM events WHERE stream_id = %s ORDER BY version DESC LIMIT 1", user
    )
    feed_messages: list[str] = []
    try:
        async with asyncio.timeout(30):
            while True:
                raw = await feed.recv()
                feed_messages.append(str(raw))
                event = json.loads(raw).get("payload", {}).get("data", {}).get("eventAppended")
                if event and event["streamId"] == user and event["type"] == last_type:
                    break
    finally:
        await feed.close()
    assert any("UserRegistered" in m for m in feed_messages)
    assert all(clean(message) for message in feed_messages)
