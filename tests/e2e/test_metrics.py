"""/metrics of the API, the worker, the followers and the Temporal SDK after a transfer; /status."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

from runtime.followers import pool_size as followers_pool_size
from tests.dashboard_queries import metric_names
from tests.e2e.conftest import Stack
from tests.e2e.test_bank_api import CLOSE, TRANSFER, open_account, register
from tests.waiting import eventually

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of a /metrics page, parsed by prometheus_client's own parser."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def exported_names(url: str) -> set[str]:
    """The sample names a /metrics page exports, families without samples yet included."""
    text = httpx.get(url, timeout=10).text
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, []))
        names.update(sample.name for sample in family.samples)
    return names


def value(samples: Samples, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The sum of the samples named `name` whose labels include `labels` (0 when none)."""
    wanted = set((labels or {}).items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


async def scrape_when_up(url: str) -> Samples:
    """A scrape, once the server answers (the worker serves metrics once it polls)."""
    found: list[Samples] = []

    async def answers() -> bool:
        try:
            found.append(scrape(url))
        except httpx.TransportError:
            return False
        return True

    await eventually(answers, 60, f"{url} answers")
    return found[-1]


def transfer(stack: Stack, source: str, destination: str, amount: str) -> str:
    answer = stack.data(
        TRANSFER,
        {
            "in": {
                "fromAccountId": source,
                "toAccountId": destination,
                "amount": amount,
                "transferId": str(uuid.uuid4()),
            }
        },
    )["transferMoney"]
    typename: str = answer["__typename"]
    return typename


async def test_a_transfer_moves_the_counters_of_the_api_the_worker_and_the_followers(
    stack: Stack,
) -> None:
    api_url = stack.api_url + "/metrics"
    api_before = await scrape_when_up(api_url)
    worker_before = await scrape_when_up(stack.worker_metrics_url)
    followers_before = await scrape_when_up(stack.followers_metrics_url)

    owner = register(stack)
    source = open_account(stack, owner, deposit="100.00")
    destination = open_account(stack, owner)
    assert transfer(stack, source, destination, "30.00") == "TransferCompleted"
    # To a closed account: refused at the deposit, so the withdrawal and the reservation
    # are compensated.
    closed = open_account(stack, owner)
    assert stack.data(CLOSE, {"in": {"accountId": closed}})["closeAccount"]["__typename"] == (
        "AccountClosed"
    )
    assert transfer(stack, source, closed, "20.00") == "TransferRejected"

    api_after = scrape(api_url)
    transfers = {"type": "mutation", "operation": "transferMoney", "outcome": "ok"}
    name = "sagaline_graphql_operations_total"
    assert value(api_after, name, transfers) - value(api_before, name, transfers) == 2
    duration = "sagaline_graphql_operation_duration_seconds_count"
    timed = {"type": "mutation", "operation": "transferMoney"}
    assert value(api_after, duration, timed) - value(api_before, duration, timed) == 2
    results = "sagaline_graphql_mutation_results_total"
    for result in ("TransferCompleted", "TransferRejected"):
        labels = {"mutation": "transferMoney", "result": result}
        assert value(api_after, results, labels) - value(api_before, results, labels) == 1
    opened = {"mutation": "openAccount", "result": "AccountOpened"}
    assert value(api_after, results, opened) - value(api_before, results, opened) == 3
    for projection in ("users", "accounts", "transfers"):
        assert ("sagaline_projection_lag_events", frozenset({("projection", projection)})) in (
            api_after
        )
    assert value(api_after, "sagaline_event_store_head_position") > value(
        api_before, "sagaline_event_store_head_position"
    )
    assert ("sagaline_sagas_waiting_for_operator", frozenset()) in api_after
    assert value(api_after, "sagaline_db_pool_connections", {"pool": "api"}) >= 1

    worker_after = scrape(stack.worker_metrics_url)

    def moved(name: str, labels: Mapping[str, str] | None = None) -> float:
        return value(worker_after, name, labels) - value(worker_before, name, labels)

    # register, two opens, a deposit, and the transfers' steps: each at least one append.
    assert moved("sagaline_appends_total", {"outcome": "ok"}) >= 8
    assert moved("sagaline_append_duration_seconds_count") >= 8
    assert moved("sagaline_append_events_sum") >= 8
    saga = {"saga_type": "TransferSaga"}
    assert moved("sagaline_sagas_started_total", saga) >= 2
    assert moved("sagaline_sagas_finished_total", {**saga, "outcome": "completed"}) >= 1
    assert moved("sagaline_sagas_finished_total", {**saga, "outcome": "compensated"}) >= 1
    for step in ("withdraw", "reserve_daily_limit"):
        compensated = {**saga, "step": step, "outcome": "succeeded"}
        assert moved("sagaline_saga_compensations_total", compensated) >= 1
    assert value(worker_after, "sagaline_db_pool_connections", {"pool": "appends"}) >= 1
    assert not [k for k in worker_after if k[0].startswith("sagaline_consumer_")]

    # The pattern detector, in the followers process, consumes every event from Kafka after
    # the relay published it.
    consumed_before = value(followers_before, "sagaline_consumer_messages_total")
    latest: list[Samples] = []

    async def consumer_moved() -> bool:
        latest.append(scrape(stack.followers_metrics_url))
        return value(latest[-1], "sagaline_consumer_messages_total") >= consumed_before + 8

    await eventually(consumer_moved, 60, "the pattern detector's consumer counted the events")
    lags = [k for k in latest[-1] if k[0] == "sagaline_consumer_lag_messages"]
    assert lags and all(("consumer", "pattern-detector") in labels for _, labels in lags)
    pool = {"pool": "followers"}
    assert (
        value(latest[-1], "sagaline_db_pool_size_connections", pool) == followers_pool_size() // 2
    )

    temporal = await scrape_when_up(stack.temporal_metrics_url)
    assert any(name.startswith("temporal_") for name, _ in temporal)


async def test_every_metric_the_dashboard_queries_is_exported(stack: Stack) -> None:
    # A transfer first, so that the Temporal SDK has recorded its activity metrics.
    owner = register(stack)
    source = open_account(stack, owner, deposit="10.00")
    assert transfer(stack, source, open_account(stack, owner), "1.00") == "TransferCompleted"
    urls = (
        stack.api_url + "/metrics",
        stack.worker_metrics_url,
        stack.followers_metrics_url,
        stack.temporal_metrics_url,
    )
    for url in urls:
        await scrape_when_up(url)
    exported = set().union(*(exported_names(url) for url in urls))
    queried = metric_names()
    assert queried, "the dashboard queries no metric"
    assert sorted(queried - exported) == []


def test_status_page_shows_projection_and_relay_lags_and_parked_sagas(stack: Stack) -> None:
    response = httpx.get(stack.api_url + "/status", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for projection in ("users", "accounts", "transfers"):
        assert f"projection {projection}</td>" in page
    assert "relay (to Kafka)" in page
    assert "Sagas waiting for an operator (NEEDS_ATTENTION):" in page
    assert "<script" not in page
