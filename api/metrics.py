"""GraphQL metrics: operations by root field and outcome, their latency, errors by type, and
mutations by the payload type they answered.

Labels are bounded by the schema, never by what a client writes: an operation is named by
the root field it selects (`transferMoney`), "multiple" when it selects several, "unknown"
when it names none the schema has. Clients' operation names are free text and not used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
)
from graphql import (
    OperationType as GraphQLOperationType,
)
from prometheus_client import CollectorRegistry
from strawberry.extensions import FieldExtension, SchemaExtension
from strawberry.extensions.field_extension import AsyncExtensionResolver
from strawberry.types import Info
from strawberry.types.base import get_object_definition

from adapters.metrics import LoopCounter, LoopHistogram
from api.safety import kept_parsed

UNKNOWN = "unknown"
MULTIPLE = "multiple"
INTROSPECTION = "introspection"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

LABELS_KEPT = 256
"""How many documents' labels `GraphQLMetrics.label` remembers (the checked documents' cache
holds 256 query texts)."""

RootFields = Mapping[str, frozenset[str]]
"""Per operation type (query, mutation, subscription), the schema's root field names."""


class GraphQLMetrics:
    """The GraphQL metric families of one API process, counted on its event loop."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.operations = LoopCounter(
            "sagaline_graphql_operations",
            "GraphQL operations by type, root field and outcome (ok, error, invalid).",
            ["type", "operation", "outcome"],
            registry,
        )
        self.duration = LoopHistogram(
            "sagaline_graphql_operation_duration_seconds",
            "Time to answer a query or mutation, by type and root field.",
            ["type", "operation"],
            DURATION_BUCKETS,
            registry,
        )
        self.errors = LoopCounter(
            "sagaline_graphql_errors",
            "Errors in GraphQL answers, by root field and type (the error's code, else the"
            " exception's class).",
            ["operation", "type"],
            registry,
        )
        self.mutation_results = LoopCounter(
            "sagaline_graphql_mutation_results",
            "Mutations answered, by mutation and payload type (e.g. TransferCompleted,"
            " InsufficientFunds).",
            ["mutation", "result"],
            registry,
        )
        self._root_fields: RootFields | None = None
        # Each document's label by its identity (the document is kept, so the identity is
        # not reused while it is).
        self._labels: dict[int, tuple[DocumentNode, str | None, tuple[str, str]]] = {}

    def label(
        self, schema: Any, document: DocumentNode | None, operation_name: str | None
    ) -> tuple[str, str]:
        """`operation_label` of the document, worked out once per document and name."""
        if document is None:
            return UNKNOWN, UNKNOWN
        known = self._labels.get(id(document))
        if known is not None and known[0] is document and known[1] == operation_name:
            return known[2]
        label = operation_label(document, operation_name, self.root_fields(schema))
        if not kept_parsed(document):
            # Kept, it would keep its query text: a document of up to a body's size (mostly
            # comments, which cost no tokens) that the parse cache does not keep either.
            return label
        if len(self._labels) >= LABELS_KEPT:
            self._labels.clear()
        self._labels[id(document)] = (document, operation_name, label)
        return label

    def root_fields(self, schema: Any) -> RootFields:
        """The schema's root fields, read once from the first operation's schema."""
        if self._root_fields is None:
            graphql_schema = schema._schema
            self._root_fields = {
                operation.value: frozenset(root.fields)
                for operation in GraphQLOperationType
                if (root := graphql_schema.get_root_type(operation)) is not None
            }
        return self._root_fields


def operation_label(
    document: DocumentNode | None, operation_name: str | None, roots: RootFields
) -> tuple[str, str]:
    """The (type, root field) an operation is counted under, bounded by the schema."""
    if document is None:
        return UNKNOWN, UNKNOWN
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen: OperationDefinitionNode | None
    if operation_name is None:
        chosen = operations[0] if len(operations) == 1 else None
    else:
        named = (o for o in operations if o.name is not None and o.name.value == operation_name)
        chosen = next(named, None)
    if chosen is None:
        return UNKNOWN, UNKNOWN
    kind = chosen.operation.value
    known = roots.get(kind, frozenset())
    names = {
        selection.name.value
        for selection in chosen.selection_set.selections
        if isinstance(selection, FieldNode) and selection.name.value != "__typename"
    }
    if names and all(name in ("__schema", "__type") for name in names):
        return kind, INTROSPECTION
    fields = names & known
    if len(fields) > 1:
        return kind, MULTIPLE
    if len(fields) == 1 and fields == names:
        return kind, next(iter(fields))
    return kind, UNKNOWN


def error_type(error: GraphQLError) -> str:
    """What an error is counted as: its code, else its exception's class."""
    code = (error.extensions or {}).get("code")
    if isinstance(code, str) and code:
        return code[:64]
    if error.original_error is not None and not isinstance(error.original_error, GraphQLError):
        return type(error.original_error).__name__
    return "GraphQLError"


class OperationMetrics(SchemaExtension):
    """Counts and times every operation; must come before the extensions that mask errors,
    so it sees each error's original exception."""

    def __init__(self, metrics: GraphQLMetrics) -> None:
        self._metrics = metrics

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        record_operation(
            self._metrics,
            context.schema,
            context.graphql_document,
            context.operation_name,
            context.pre_execution_errors,
            context.result,
            started,
        )


def record_operation(
    metrics: GraphQLMetrics,
    schema: Any,
    document: DocumentNode | None,
    operation_name: str | None,
    pre_execution_errors: list[GraphQLError] | None,
    result: object,
    started: float,
) -> None:
    """Count an operation that began at `started` (perf_counter), its duration and errors.

    `pre_execution_errors` and `result` are what strawberry's execution context holds when
    the operation ends: the errors before masking (parse, validation, and also execution
    errors, which strawberry records there too), and the result.
    """
    kind, operation = metrics.label(schema, document, operation_name)
    errors: list[GraphQLError] = list(pre_execution_errors or [])
    if pre_execution_errors:
        outcome = "invalid"
    else:
        errors += list(getattr(result, "errors", None) or [])
        outcome = "error" if errors else "ok"
    metrics.operations.inc((kind, operation, outcome))
    if kind != "subscription":
        metrics.duration.observe((kind, operation), time.perf_counter() - started)
    for error in errors:
        metrics.errors.inc((operation, error_type(error)))


def payload_type(result: object) -> str:
    """The GraphQL type name of a resolver's result (a payload union member)."""
    definition = get_object_definition(result)
    if definition is not None:
        return definition.name
    return type(result).__name__ if result is not None else "null"


class MutationResults(FieldExtension):
    """Counts a mutation's answers by payload type, into the metrics of the request's API."""

    async def resolve_async(
        self, next_: AsyncExtensionResolver, source: Any, info: Info, **kwargs: Any
    ) -> Any:
        result = await next_(source, info, **kwargs)
        metrics = info.context.services.graphql_metrics
        if metrics is not None:
            metrics.mutation_results.inc((info.field_name, payload_type(result)))
        return result


def count_mutation_results(mutation_types: Iterable[type[Any]]) -> None:
    """Put MutationResults on every field of the mutation root (once, however many schemas)."""
    for mutation_type in mutation_types:
        definition = get_object_definition(mutation_type, strict=True)
        for field in definition.fields:
            if not any(isinstance(extension, MutationResults) for extension in field.extensions):
                field.extensions.append(MutationResults())


def metrics_extensions(
    metrics: GraphQLMetrics | None,
) -> list[Callable[[], SchemaExtension]]:
    """The factory of OperationMetrics for a schema, if it has metrics."""
    if metrics is None:
        return []
    return [lambda: OperationMetrics(metrics)]
