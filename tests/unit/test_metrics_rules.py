"""Pure rules of the metrics: bounded labels, error types, the status page, lag bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from graphql import GraphQLError, parse
from prometheus_client.parser import text_string_to_metric_families

from adapters.consumer_metrics import ConsumerMetrics
from adapters.metrics import exposition, new_registry, request_target
from api.metrics import GraphQLMetrics, error_type, operation_label, payload_type
from api.schema import build_schema
from api.status import FollowerStanding, ProjectionStanding, render_status_page
from api.transfers.types import TransferCompletedPayload
from runtime.saga_metrics import SagaMetrics

ROOTS = {
    "query": frozenset({"user", "account"}),
    "mutation": frozenset({"transferMoney", "openAccount"}),
}


def samples(registry: Any, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of the family `name` (without suffix), by its sorted labels."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in registry.collect():
        if family.name == name:
            for sample in family.samples:
                found[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return found


@pytest.mark.parametrize(
    ("document", "name", "expected"),
    [
        ("mutation { transferMoney { __typename } }", None, ("mutation", "transferMoney")),
        ("query Mine { user(id: 1) { id } }", "Mine", ("query", "user")),
        ("{ user(id: 1) { id } account(id: 2) { id } }", None, ("query", "multiple")),
        ("{ a: user(id: 1) { id } b: user(id: 2) { id } }", None, ("query", "user")),
        ("{ __typename user(id: 1) { id } }", None, ("query", "user")),
        ("{ secretField }", None, ("query", "unknown")),
        ("{ user(id: 1) { id } secretField }", None, ("query", "unknown")),
        ("{ __schema { types { name } } }", None, ("query", "introspection")),
        (
            "query A { user(id: 1) { id } } mutation B { openAccount }",
            "B",
            ("mutation", "openAccount"),
        ),
        (
            "query A { user(id: 1) { id } } query B { account(id: 1) { id } }",
            None,
            ("unknown", "unknown"),
        ),
        ("query A { user(id: 1) { id } }", "Nope", ("unknown", "unknown")),
    ],
)
def test_operations_are_named_by_their_root_field_within_the_schema(
    document: str, name: str | None, expected: tuple[str, str]
) -> None:
    assert operation_label(parse(document), name, ROOTS) == expected


def test_a_remembered_label_is_the_label_of_that_document_and_name() -> None:
    metrics = GraphQLMetrics(new_registry())
    schema = build_schema()
    two = parse("query A { user(id: 1) { id } } query B { account(id: 1) { id } }")
    for _ in range(2):
        assert metrics.label(schema, two, "A") == ("query", "user")
        assert metrics.label(schema, two, "B") == ("query", "account")
        assert metrics.label(schema, two, None) == ("unknown", "unknown")
        # An equal document parsed again is another object: labelled on its own.
        assert metrics.label(schema, parse("{ user(id: 1) { id } }"), None) == ("query", "user")
    assert metrics.label(schema, None, "A") == ("unknown", "unknown")
    for i in range(600):  # more documents than are kept
        document = parse(f"{{ a{i}: account(id: 1) {{ id }} }}")
        assert metrics.label(schema, document, None) == ("query", "account")


def test_a_document_of_a_long_query_text_is_labelled_but_not_kept() -> None:
    metrics = GraphQLMetrics(new_registry())
    schema = build_schema()
    padded = parse("{ user(id: 1) { id } }\n#" + "x" * 100_000)
    assert metrics.label(schema, padded, None) == ("query", "user")
    short = parse("{ user(id: 1) { id } }")
    assert metrics.label(schema, short, None) == ("query", "user")
    kept = [document for document, _, _ in metrics._labels.values()]
    assert kept == [short]


def test_an_unparsable_document_is_an_unknown_operation() -> None:
    assert operation_label(None, "anything", ROOTS) == ("unknown", "unknown")


def test_an_error_is_typed_by_its_code_then_by_its_exception() -> None:
    assert error_type(GraphQLError("x", extensions={"code": "FORBIDDEN"})) == "FORBIDDEN"
    assert error_type(GraphQLError("x", original_error=KeyError("k"))) == "KeyError"
    assert error_type(GraphQLError("x")) == "GraphQLError"


def test_a_payload_is_named_by_its_graphql_type() -> None:
    completed = TransferCompletedPayload.__new__(TransferCompletedPayload)
    assert payload_type(completed) == "TransferCompleted"
    assert payload_type(None) == "null"


async def test_schema_counts_operations_by_outcome_and_times_them() -> None:
    registry = new_registry()
    metrics = GraphQLMetrics(registry)
    schema = build_schema(metrics=metrics)
    await schema.execute("{ __typename }")
    await schema.execute("{ noSuchField }")
    await schema.execute("{ user(id: ")
    operations = samples(registry, "sagaline_graphql_operations")
    assert (
        operations[
            (
                "sagaline_graphql_operations_total",
                ("operation", "unknown"),
                ("outcome", "invalid"),
                ("type", "query"),
            )
        ]
        == 1
    )
    assert (
        operations[
            (
                "sagaline_graphql_operations_total",
                ("operation", "unknown"),
                ("outcome", "invalid"),
                ("type", "unknown"),
            )
        ]
        == 1
    )
    assert (
        operations[
            (
                "sagaline_graphql_operations_total",
                ("operation", "unknown"),
                ("outcome", "ok"),
                ("type", "query"),
            )
        ]
        == 1
    )
    durations = samples(registry, "sagaline_graphql_operation_duration_seconds")
    count = ("sagaline_graphql_operation_duration_seconds_count", ("operation", "unknown"))
    assert durations[(*count, ("type", "query"))] == 2


async def test_exposition_parses_and_survives_a_failing_refresh() -> None:
    registry = new_registry()
    sagas = SagaMetrics(registry)
    sagas.record("finished", "TransferSaga", "COMPENSATED")
    sagas.record("compensation_failed", "TransferSaga", "withdraw")

    async def broken() -> None:
        raise ConnectionError("database down")

    text = (await exposition(registry, [broken])).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    finished = families["sagaline_sagas_finished"].samples
    assert [(s.labels, s.value) for s in finished if s.name.endswith("_total")] == [
        ({"saga_type": "TransferSaga", "outcome": "compensated"}, 1.0)
    ]
    compensations = families["sagaline_saga_compensations"].samples
    assert [s.labels["outcome"] for s in compensations if s.name.endswith("_total")] == ["failed"]


def test_consumer_lag_drops_partitions_given_up() -> None:
    registry = new_registry()
    metrics = ConsumerMetrics(registry)
    metrics.set_lag("cep", {0: 5, 1: 0})
    metrics.set_lag("cep", {1: 3})
    lags = samples(registry, "sagaline_consumer_lag_messages")
    assert lags == {
        ("sagaline_consumer_lag_messages", ("consumer", "cep"), ("partition", "1")): 3.0
    }


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", ("GET", "/metrics")),
        (b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", ("GET", "/metrics")),
        (b"POST /metrics HTTP/1.1\r\n\r\n", ("POST", "/metrics")),
        (b"garbage\r\n\r\n", ("", "")),
    ],
)
def test_the_metrics_server_reads_method_and_path(head: bytes, expected: tuple[str, str]) -> None:
    assert request_target(head) == expected


def test_status_page_shows_lags_stops_and_parked_sagas_escaped() -> None:
    standing = FollowerStanding(
        head=120,
        projections=[
            ProjectionStanding("users", 120, 0, None),
            ProjectionStanding("<accounts>", 90, 30, 91),
        ],
        relay_position=110,
        relay_lag=10,
    )
    page = render_status_page(standing, 2, "http://ui'x", datetime(2026, 1, 2, tzinfo=UTC))
    assert "projection users</td><td>running</td><td>120</td><td>0</td>" in page
    assert "&lt;accounts&gt;" in page and "<accounts>" not in page
    assert "STOPPED at 91</td><td>90</td><td>30</td>" in page
    assert "<td>110</td><td>10</td>" in page
    assert "(NEEDS_ATTENTION): 2." in page
    assert "href='http://ui&#x27;x'" in page
    assert "<script" not in page


def test_status_page_says_what_it_could_not_read() -> None:
    page = render_status_page(None, None, "http://ui")
    assert "The database did not answer" in page
    assert "Temporal did not answer" in page
