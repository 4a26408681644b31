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

from tests.e2e.conftest import CLIENT_TOKEN, Stack
from tests.e2e.test_bank_api import DEPOSIT, TRANSFER, open_account, register

PROTOCOL = "graphql-transport-ws"


def ws_url(stack: Stack) -> str:
    return stack.graphql_url.replace("http://", "ws://")


async def subscribe(stack: Stack, query: str, variables: dict[str, Any]) -> ClientConnection:
    socket = await connect(
        ws_url(stack),
        subprotocols=[PROTOCOL],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
    )
    await socket.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(await socket.recv())["type"] == "connection_ack"
    await socket.send(
        json.dumps(
            {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}
        )
    )
    return socket


async def next_data(socket: ClientConnection, field: str) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), 20))
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


async def test_event_appended_delivers_a_streams_new_events(stack: Stack) -> None:
    account = open_account(stack, register(stack))
    socket = await subscribe(
        stack,
        "subscription($id: ID) { eventAppended(streamId: $id) { streamId version type } }",
        {"id": account},
    )
    try:
        await post(stack, DEPOSIT, {"in": {"accountId": account, "amount": "7"}})
        event = await next_data(socket, "eventAppended")
    finally:
        await socket.close()
    assert event == {"streamId": account, "version": 2, "type": "MoneyDeposited"}


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
        statuses = []
        while not statuses or statuses[-1] != "COMPLETED":
            statuses.append((await next_data(transfers, "transferUpdated"))["status"])
        saga_statuses = []
        while not saga_statuses or saga_statuses[-1] != "COMPLETED":
            saga_statuses.append((await next_data(sagas, "sagaUpdated"))["status"])
    finally:
        await transfers.close()
        await sagas.close()
    assert statuses[0] == "REQUESTED"
    assert saga_statuses[-1] == "COMPLETED"


async def test_a_websocket_without_a_token_is_refused(stack: Stack) -> None:
    with pytest.raises((InvalidStatus, ConnectionClosed)):
        async with connect(ws_url(stack), subprotocols=[PROTOCOL]) as socket:  # type: ignore[list-item]
            await socket.send(json.dumps({"type": "connection_init", "payload": {}}))
            await asyncio.wait_for(socket.recv(), 10)
