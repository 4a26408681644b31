"""SAGALINE_METRICS: off, a worker binds no metrics port and `up` lists no /metrics URL; on
(the default), the worker serves its families and the exposition parses."""

from __future__ import annotations

import socket

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from api.app import create_app
from runtime.config import Settings
from runtime.ports import free_port
from runtime.stack import WORKER_ROLES, _metrics_urls
from runtime.worker_metrics import WorkerMetrics, serving_metrics, temporal_runtime


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_metrics_are_on_by_default_and_off_turns_every_worker_port_off() -> None:
    assert Settings().metrics is True
    on = Settings(worker_metrics_port=9464, worker_temporal_metrics_port=0)
    assert on.process_metrics("worker").ports() == [(9464, "SAGALINE_WORKER_METRICS_PORT")]
    off = Settings(metrics=False, worker_metrics_port=9464, worker_temporal_metrics_port=9465)
    for role in WORKER_ROLES:
        assert off.process_metrics(role).ports() == []
        assert temporal_runtime(off.process_metrics(role)) is None


def test_up_lists_metrics_urls_only_when_metrics_are_on() -> None:
    on = _metrics_urls(Settings(api_port=8000), "127.0.0.1")
    assert {
        "API metrics",
        "Worker metrics",
        "Worker Temporal SDK metrics",
        "Followers metrics",
        "Followers Temporal SDK metrics",
    } <= set(on)
    assert on["Followers metrics"] == "http://127.0.0.1:9466/metrics"
    off = _metrics_urls(Settings(api_port=8000, metrics=False), "127.0.0.1")
    assert off == {"Status page": "http://127.0.0.1:8000/status"}


async def test_a_worker_with_metrics_off_serves_nothing_and_with_them_on_exports() -> None:
    port = free_port()
    off = Settings(metrics=False, worker_metrics_port=port)
    async with serving_metrics(off.process_metrics("worker"), None):
        assert not listening(port)
    async with serving_metrics(off.process_metrics("worker"), WorkerMetrics().registry):
        assert not listening(port)

    on = Settings(worker_metrics_port=port)
    metrics = WorkerMetrics()
    metrics.sagas.record("started", "transfer", "")
    served = serving_metrics(on.process_metrics("worker"), metrics.registry)
    async with served, httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert samples[("sagaline_sagas_started_total", (("saga_type", "transfer"),))] == 1
    assert not listening(port)


def test_an_api_with_metrics_off_has_no_metrics_page() -> None:
    # No lifespan: the routes alone, which need no database.
    assert TestClient(create_app(Settings(metrics=False))).get("/metrics").status_code == 404
    answer = TestClient(create_app(Settings())).get("/metrics")
    assert answer.status_code == 200
    names = {family.name for family in text_string_to_metric_families(answer.text)}
    assert "sagaline_graphql_operations" in names
