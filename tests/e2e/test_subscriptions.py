"""Live updates over graphql-transport-ws: events, transfers and sagas as they change."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.conftest import CLIENT_TOKEN, OPERATOR_TOKEN, Stack
from tests.e2e.test_bank_api import DEPOSIT, TRANSFER, open_account, register

PROTOCOL = "graphql-transport-ws"


def ws_url(stack: Stack) -> str:
    return stack.graphql_url.replace("http://", "ws://")


async def open_socket(
    stack: Stack, init: dict[str, Any], headers: dict[str, str] | None = None
) -> ClientConnection:
    """A graphql-transport-ws socket whose connection_init (with `init`) was acknowledged."""
    socket = await connect(
        ws_url(stack),
        subprotocols=[PROTOCOL],  # type: ignore[list-item]
        additional_headers=headers or {},
    )
    await socket.send(json.dumps({"type": "connection_init", "payload": init}))
    assert json.loads(await socket.recv())["type"] == "connection_ack"
    return socket


async def start(socket: ClientConnection, query: str, variables: dict[str, Any]) -> None:
    await socket.send(
        json.dumps(
            {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}
        )
    )


async def subscribe(stack: Stack, query: str, variables: dict[str, Any]) -> ClientConnection:
    socket = await open_socket(stack, {}, {"Authorization": f"Bearer {CLIENT_TOKEN}"})
    await start(socket, query, variables)
    return socket


async def next_data(socket: ClientConnection, field: str, within: float = 20) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), within))
        if message["type"] == "next":
            assert not message["payload"].get("errors"), message
            data: dict[str, Any] = message["payload"]["data"][field]
            return data
        assert message["type"] in ("ping", "pong"), message


async def post(stack: Stack, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            stack.graphql_url,
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
        )
    body: dict[str, Any] = response.json()
    assert not body.get("errors"), body
    return body["data"]


async def deposit_until_delivered(
    stack: Stack, socket: ClientConnection, account: str
) -> tuple[dict[str, Any], int]:
    """Deposit into `account` until the socket's eventAppended delivers an event; the event
    and how many deposits it took.

    Nothing tells a client its subscription is live, so a deposit made before the server
    started it would go unseen: deposit again, a bounded number of times.
    """
    for deposits in range(1, 11):
        await post(stack, DEPOSIT, {"in": {"accountId": account, "amount": "1"}})
        try:
            return await next_data(socket, "eventAppended", within=5), deposits
        except TimeoutError:
            continue
    raise AssertionError("ten deposits and no eventAppended")


async def test_event_appended_delivers_a_streams_new_events(stack: Stack) -> None:
    account = open_account(stack, register(stack))
    socket = await subscribe(
        stack,
        "subscription($id: ID) { eventAppended(streamId: $id) { streamId version type } }",
        {"id": account},
    )
    try:
        event, deposits = await deposit_until_delivered(stack, socket, account)
    finally:
        await socket.close()
    # The account's opening is version 1; the deposit delivered is one of those made.
    assert 2 <= event.pop("version") <= deposits + 1
    assert event == {"streamId": account, "type": "MoneyDeposited"}


async def test_transfer_and_saga_updates_follow_a_transfer_to_its_end(stack: Stack) -> None:
    owner = register(stack)
    source, destination = open_account(stack, owner, "30"), open_account(stack, owner)
    transfer_id = str(uuid.uuid4())
    transfers = await subscribe(
        stack,
        "subscription($id: ID!) { transferUpdated(id: $id) { status steps } }",
        {"id": transfer_id},
    )
    sagas = await subscribe(
        stack, "subscription($id: ID!) { sagaUpdated(id: $id) { status } }", {"id": transfer_id}
    )
    try:
        await post(
            stack,
            TRANSFER,
            {
                "in": {
                    "fromAccountId": source,
                    "toAccountId": destination,
                    "amount": "10",
                    "transferId": transfer_id,
                }
            },
        )
        updates = []
        while not updates or updates[-1]["status"] != "COMPLETED":
            updates.append(await next_data(transfers, "transferUpdated"))
        saga_statuses = []
        while not saga_statuses or saga_statuses[-1] != "COMPLETED":
            saga_statuses.append((await next_data(sagas, "sagaUpdated"))["status"])
    finally:
        await transfers.close()
        await sagas.close()
    # Each update is the transfer as the read models hold it once they have caught up with
    # the change that woke it: a later change already projected by then is in it too, so a
    # fast transfer may be seen REQUESTED first, or COMPLETED at once. Never out of order.
    statuses = [update["status"] for update in updates]
    assert statuses[-1] == "COMPLETED" and set(statuses[:-1]) <= {"REQUESTED"}, statuses
    assert updates[-1]["steps"] == ["reserve_daily_limit", "withdraw", "deposit"], updates
    assert saga_statuses[-1] == "COMPLETED"


async def test_a_token_in_connection_init_opens_a_socket_without_headers(stack: Stack) -> None:
    account = open_account(stack, register(stack))
    socket = await open_socket(stack, {"Authorization": f"Bearer {CLIENT_TOKEN}"})
    try:
        await start(
            socket,
            "subscription($id: ID) { eventAppended(streamId: $id) { streamId type } }",
            {"id": account},
        )
        event, _ = await deposit_until_delivered(stack, socket, account)
    finally:
        await socket.close()
    assert event == {"streamId": account, "type": "MoneyDeposited"}


async def test_the_connection_init_token_decides_the_callers_role_on_the_socket(
    stack: Stack,
) -> None:
    retry = """
    mutation { retrySaga(input: {sagaId: "no-such-saga"}) { __typename } }"""
    answers = {}
    for name, init in (
        ("client", {"authorization": f"Bearer {CLIENT_TOKEN}"}),
        ("operator", {"token": OPERATOR_TOKEN}),
    ):
        socket = await open_socket(stack, init)
        try:
            await start(socket, retry, {})
            answers[name] = (await next_data(socket, "retrySaga"))["__typename"]
        finally:
            await socket.close()
    assert answers == {"client": "Forbidden", "operator": "SagaNotFound"}


async def close_code_after_init(stack: Stack, init: dict[str, Any]) -> int:
    """How the server closes a header-less socket that sends `init`, then subscribes."""
    async with connect(ws_url(stack), subprotocols=[PROTOCOL]) as socket:  # type: ignore[list-item]
        await socket.send(json.dumps({"type": "connection_init", "payload": init}))
        await start(socket, "subscription { eventAppended { type } }", {})
        with pytest.raises(ConnectionClosed) as closed:
            message = await asyncio.wait_for(socket.recv(), 10)
            pytest.fail(f"the server answered {message!r}")
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def test_a_wrong_token_in_connection_init_closes_the_socket_forbidden(stack: Stack) -> None:
    assert await close_code_after_init(stack, {"Authorization": "Bearer not-a-token"}) == 4403
    assert await close_code_after_init(stack, {"token": "not-a-token"}) == 4403


async def test_a_socket_without_any_token_is_closed_forbidden(stack: Stack) -> None:
    assert await close_code_after_init(stack, {}) == 4403


async def test_a_wrong_token_in_the_handshake_header_is_refused(stack: Stack) -> None:
    with pytest.raises(InvalidStatus):
        await connect(
            ws_url(stack),
            subprotocols=[PROTOCOL],  # type: ignore[list-item]
            additional_headers={"Authorization": "Bearer not-a-token"},
        )


MAX_MESSAGE_BYTES = 1_048_576  # SAGALINE_API_MAX_BODY_BYTES's default


async def test_a_websocket_message_over_the_body_limit_closes_the_socket(stack: Stack) -> None:
    socket = await open_socket(stack, {}, {"Authorization": f"Bearer {CLIENT_TOKEN}"})
    query = "subscription($id: ID) { eventAppended(streamId: $id) { type } }"
    padding = "x" * MAX_MESSAGE_BYTES
    with pytest.raises(ConnectionClosed) as closed:
        await start(socket, query, {"id": "an-account", "padding": padding})
        async with asyncio.timeout(20):
            while True:
                message = json.loads(await socket.recv())
                assert message["type"] in ("ping", "pong"), message
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009  # message too big
    # A message under the limit is still served.
    small = await subscribe(stack, query, {"id": "an-account", "padding": "x" * 1000})
    try:
        await small.ping()
    finally:
        await small.close()


async def test_a_refusal_echoing_a_long_operation_name_still_closes_with_its_code(
    stack: Stack,
) -> None:
    # The reason ('Unknown operation named "BBB...".') is cut to fit the close frame; uncut,
    # the server dropped the connection with a protocol error and no code.
    socket = await open_socket(stack, {}, {"Authorization": f"Bearer {CLIENT_TOKEN}"})
    payload = {"query": "subscription A { eventAppended { type } }", "operationName": "B" * 300}
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(20):
            while True:
                await socket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4400
    assert closed.value.rcvd.reason.startswith('Unknown operation named "BBBB')
    assert len(closed.value.rcvd.reason.encode()) <= 123
