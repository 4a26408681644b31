"""An API with SAGALINE_METRICS=false answers as usual and records nothing; the same API with
metrics on counts the same operations.

The APIs run in process beside the session's stack, on its Postgres and Temporal.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from runtime.config import Settings
from tests.e2e.conftest import CLIENT_TOKEN, Stack
from tests.e2e.test_bank_api import open_account, register

ACCOUNT = "query($id: ID!) { account(id: $id) { id balance } }"
OPERATIONS = "sagaline_graphql_operations_total"


@asynccontextmanager
async def api(stack: Stack, *, metrics: bool) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=stack.database_url,
        temporal_address=stack.temporal_address,
        api_tokens=f"{CLIENT_TOKEN}:client",
        session_key=secrets.token_urlsafe(32),
        metrics=metrics,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
            timeout=60,
        ) as client,
    ):
        yield client


def sagaline_families(registry: prometheus_client.CollectorRegistry) -> set[str]:
    return {family.name for family in registry.collect() if family.name.startswith("sagaline")}


async def read_account(client: httpx.AsyncClient, account_id: str) -> None:
    response = await client.post(
        "/graphql", json={"query": ACCOUNT, "variables": {"id": account_id}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["account"]["id"] == account_id


async def test_metrics_off_records_nothing_and_on_counts_the_same_queries(stack: Stack) -> None:
    account_id = open_account(stack, register(stack), deposit="5.00")
    global_before = sagaline_families(prometheus_client.REGISTRY)

    async with api(stack, metrics=False) as off:
        for _ in range(3):
            await read_account(off, account_id)
        assert (await off.get("/metrics")).status_code == 404
        assert (await off.get("/status")).status_code == 200
    # Nothing went to the library's global registry either.
    assert sagaline_families(prometheus_client.REGISTRY) == global_before == set()

    async with api(stack, metrics=True) as on:
        for _ in range(3):
            await read_account(on, account_id)
        page = await on.get("/metrics")
    assert page.status_code == 200
    counted = sum(
        sample.value
        for family in text_string_to_metric_families(page.text)
        for sample in family.samples
        if sample.name == OPERATIONS
        and sample.labels == {"type": "query", "operation": "account", "outcome": "ok"}
    )
    assert counted == 3
