"""While Postgres or Temporal cannot be reached, the API answers "retry", never an internal error.

An API of the test's own runs in process beside the session's stack and reaches the stack's
Postgres or Temporal through a proxy the test cuts; the stack's worker and projections keep
running, so a mutation accepted during the cut still finishes.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from api.app import create_app
from runtime.config import Settings
from tests.e2e.conftest import CLIENT_TOKEN, COMMAND_TIMEOUT_SECONDS, Stack
from tests.e2e.test_bank_api import BALANCE, DEPOSIT, TRANSFER, open_account, register
from tests.proxy import CuttableProxy
from tests.waiting import eventually

SAGA = "query($id: ID!) { saga(id: $id) { status } }"
GRAPHQL_RESPONSE = "application/graphql-response+json"


@asynccontextmanager
async def api_reaching(
    stack: Stack, *, postgres_port: int, temporal_port: int
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an in-process API that reaches Postgres and Temporal on these ports."""
    settings = Settings(
        database_url=f"postgresql://postgres@127.0.0.1:{postgres_port}/sagaline",
        temporal_address=f"127.0.0.1:{temporal_port}",
        api_tokens=f"{CLIENT_TOKEN}:client",
        session_key=secrets.token_urlsafe(32),
        command_timeout_seconds=COMMAND_TIMEOUT_SECONDS,
        consistency_timeout_seconds=30,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://api",
            headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
            timeout=120,
        ) as client:
            yield client


@asynccontextmanager
async def proxy_to(port: int) -> AsyncIterator[CuttableProxy]:
    proxy = CuttableProxy("127.0.0.1", port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def graphql(
    api: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any],
    accept: str = "application/json",
) -> httpx.Response:
    return await api.post(
        "/graphql", json={"query": query, "variables": variables}, headers={"Accept": accept}
    )


def assert_retry_later(response: httpx.Response, service: str) -> None:
    """A 503 with Retry-After whose GraphQL errors all name `service` as down."""
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    errors = response.json()["errors"]
    assert errors
    for error in errors:
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE", error
        assert error["extensions"]["service"] == service, error
        assert "correlationId" not in error["extensions"]


def deposit_of(account_id: str, amount: str) -> dict[str, Any]:
    return {"in": {"accountId": account_id, "amount": amount, "commandId": str(uuid.uuid4())}}


async def test_a_database_outage_answers_retry_and_the_accepted_deposit_finishes(
    stack: Stack,
) -> None:
    account_id = open_account(stack, register(stack))
    async with (
        proxy_to(stack.ports.postgres) as proxy,
        api_reaching(stack, postgres_port=proxy.port, temporal_port=stack.ports.temporal) as api,
    ):
        healthy = await graphql(api, BALANCE, {"id": account_id})
        assert healthy.json() == {"data": {"account": {"balance": "0.00", "status": "OPEN"}}}

        proxy.cut()
        assert_retry_later(await graphql(api, BALANCE, {"id": account_id}), "postgres")
        deposit = deposit_of(account_id, "5.00")
        # Temporal took the command; only reading the account back failed.
        assert_retry_later(await graphql(api, DEPOSIT, deposit), "postgres")

        proxy.restore()

        async def deposited() -> bool:
            answer = await graphql(api, BALANCE, {"id": account_id})
            return (
                answer.status_code == 200 and answer.json()["data"]["account"]["balance"] == "5.00"
            )

        await eventually(deposited, 60, "the deposit sent during the outage shows")
        retried = await graphql(api, DEPOSIT, deposit)
        assert retried.status_code == 200, retried.text
        assert retried.json()["data"]["depositMoney"]["__typename"] == "MoneyDeposited"
        assert retried.json()["data"]["depositMoney"]["account"]["balance"] == "5.00"


async def test_a_temporal_outage_answers_retry_while_reads_still_answer(stack: Stack) -> None:
    account_id = open_account(stack, register(stack))
    async with (
        proxy_to(stack.ports.temporal) as proxy,
        api_reaching(stack, postgres_port=stack.ports.postgres, temporal_port=proxy.port) as api,
    ):
        proxy.cut()
        deposit = deposit_of(account_id, "7.00")
        sent = await graphql(api, DEPOSIT, deposit, accept=GRAPHQL_RESPONSE)
        assert_retry_later(sent, "temporal")
        assert sent.headers["content-type"] == GRAPHQL_RESPONSE
        assert_retry_later(await graphql(api, SAGA, {"id": str(uuid.uuid4())}), "temporal")
        read = await graphql(api, BALANCE, {"id": account_id})
        assert read.json() == {"data": {"account": {"balance": "0.00", "status": "OPEN"}}}

        proxy.restore()
        retried = await graphql(api, DEPOSIT, deposit)
        assert retried.status_code == 200, retried.text
        assert retried.json()["data"]["depositMoney"]["__typename"] == "MoneyDeposited"
        assert retried.json()["data"]["depositMoney"]["account"]["balance"] == "7.00"


async def test_a_transfer_temporal_did_not_take_answers_retry_not_pending(stack: Stack) -> None:
    # Not TransferPending: that says the saga runs, and nothing had been started.
    source = open_account(stack, register(stack))
    destination = open_account(stack, register(stack))
    stack.data(DEPOSIT, deposit_of(source, "10.00"))
    transfer_id = str(uuid.uuid4())
    request = {
        "in": {
            "fromAccountId": source,
            "toAccountId": destination,
            "amount": "4.00",
            "transferId": transfer_id,
        }
    }
    async with (
        proxy_to(stack.ports.temporal) as proxy,
        api_reaching(stack, postgres_port=stack.ports.postgres, temporal_port=proxy.port) as api,
    ):
        proxy.cut()
        assert_retry_later(await graphql(api, TRANSFER, request), "temporal")

        proxy.restore()
        retried = await graphql(api, TRANSFER, request)
        assert retried.status_code == 200, retried.text
        answer = retried.json()["data"]["transferMoney"]
        assert answer["__typename"] == "TransferCompleted", answer
        assert answer["transfer"]["id"] == transfer_id
    settled = stack.data(BALANCE, {"id": source, "at": answer["position"]})
    assert settled["account"]["balance"] == "6.00"
