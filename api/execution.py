"""Queries and mutations executed without strawberry's per-request extension machinery.

Strawberry runs a schema's extensions by building, for every operation, an execution
context, one instance of each extension, and four stacks of generator context managers
(operation, parsing, validation, execution). For a small query that bookkeeping costs more
than graphql-core's execution of it. `SagalineSchema.execute` does what the schema's own
extensions do (api/metrics.py, api/safety.py), in the same order, as plain calls:

1. the query text's parsed document from the shared cache (`CheckedDocuments`), a syntax
   error or too many tokens being a request error;
2. a document of several operations without an operationName refused as a request error
   (strawberry's own path would run the first: `DocumentChecks` refuses it there), then
   the operation type, refused as strawberry refuses it (CannotGetOperationTypeError,
   InvalidOperationTypeError: the HTTP view answers 400);
3. the cached validation (limits, cost, depth, aliases and graphql-core's rules, with
   introspection refused to a customer: api/schema_disclosure.py);
4. graphql-core's `execute` with the arguments strawberry passes it (no middleware: none of
   the schema's extensions resolves fields);
5. every error logged by `process_errors` (api/error_log.py), then the unexpected ones
   masked (and a customer's stripped of suggested names), then the operation counted and
   timed from the errors before masking.

Subscriptions (`subscribe`) keep strawberry's path with the same extensions. So does
`execute` itself if the schema was given other extensions or directives after it was built.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeGuard, cast

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, OperationDefinitionNode, execute, specified_rules
from strawberry.exceptions import MissingQueryError
from strawberry.execution import optimized_is_awaitable
from strawberry.schema._graphql_core import execution_context_class_kwargs
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import (
    DEFAULT_ALLOWED_OPERATION_TYPES,
    StrawberryGraphQLCoreExecutionContext,
)
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.utils.await_maybe import await_maybe
from strawberry.utils.operation import get_first_operation, get_operation_type

from api.error_log import LoggedSchema
from api.leaf_fields import executor_for
from api.metrics import GraphQLMetrics, metrics_extensions, record_operation
from api.safety import (
    CheckedDocuments,
    masked,
    safety_extensions,
    subscription_over_http,
    unchosen_operation,
)
from api.schema_disclosure import disclosed, rules_for

VALIDATION_RULES = tuple(specified_rules)
"""The rules strawberry's execution context validates with by default."""
IS_AWAITABLE = cast("Callable[[Any], TypeGuard[Awaitable[Any]]]", optimized_is_awaitable)
"""Strawberry's faster awaitable check, which it gives graphql-core (typed as it wants)."""


class SagalineSchema(LoggedSchema):
    """The schema with its safety and metrics extensions, run directly for queries and
    mutations."""

    def __init__(
        self, *, checked: CheckedDocuments, metrics: GraphQLMetrics | None, **kwargs: Any
    ) -> None:
        super().__init__(
            extensions=[*metrics_extensions(metrics), *safety_extensions(checked=checked)],
            **kwargs,
        )
        self._checked = checked
        self._metrics = metrics
        self._own_extensions = tuple(self.extensions)
        # Plain leaf fields in one step (api/leaf_fields.py), unless the schema was given
        # its own executor or exception handlers (which strawberry's resolvers would apply).
        if (
            self.execution_context_class is StrawberryGraphQLCoreExecutionContext
            and not self.exception_handlers
        ):
            self.execution_context_class = executor_for(self._schema, self.config)

    def runs_directly(self) -> bool:
        """Whether `execute` takes the direct path (it answers an ExecutionResult then)."""
        return (
            self.extensions == self._own_extensions
            and not self.directives
            and not self.config.enable_experimental_incremental_execution
        )

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        if not self.runs_directly():
            return await super().execute(
                query,
                variable_values,
                context_value,
                root_value,
                operation_name,
                allowed_operation_types,
                operation_extensions,
            )
        started = time.perf_counter()
        if not query:
            raise MissingQueryError
        allowed = (
            DEFAULT_ALLOWED_OPERATION_TYPES
            if allowed_operation_types is None
            else allowed_operation_types
        )
        try:
            document = self._checked.document(query)
        except Exception as error:  # strawberry answers any parse failure as one
            return self._refused(None, operation_name, [_coerced(error)], started, context_value)
        name = operation_name if operation_name is not None else _first_operation_name(document)
        unchosen = unchosen_operation(document, operation_name)
        if unchosen:
            return self._refused(document, name, unchosen, started, context_value)
        try:
            operation_type = get_operation_type(document, name)
        except RuntimeError as error:
            raise CannotGetOperationTypeError(name) from error
        if operation_type not in allowed:
            raise InvalidOperationTypeError(operation_type)
        errors = (
            self._checked.errors(
                self._schema, query, document, rules_for(context_value, VALIDATION_RULES)
            )
            or self._checked.answer_errors(self._schema, query, document, variable_values)
            or subscription_over_http(context_value, document, name)
        )
        if errors:
            return self._refused(document, name, errors, started, context_value)
        try:
            outcome = await await_maybe(
                execute(
                    self._schema,
                    document,
                    root_value=root_value,
                    variable_values=variable_values,
                    operation_name=name,
                    context_value=context_value,
                    is_awaitable=IS_AWAITABLE,
                    operation_extensions=operation_extensions,
                    **execution_context_class_kwargs(self.execution_context_class),
                )
            )
        except Exception as error:  # answered as an error, as strawberry does
            return self._refused(document, name, [_coerced(error)], started, context_value)
        assert isinstance(outcome, GraphQLExecutionResult)
        original = outcome.errors
        if original:
            self._process_errors(original)
        answered = disclosed(context_value, masked(original)) if original else original
        result = ExecutionResult(data=outcome.data, errors=answered, extensions={})
        if self._metrics is not None:
            record_operation(
                self._metrics, self, document, name, original or None, outcome, started
            )
        return result

    def _refused(
        self,
        document: Any,
        operation_name: str | None,
        errors: list[GraphQLError],
        started: float,
        context: object,
    ) -> ExecutionResult:
        """The answer to an operation that stopped before or outside execution."""
        self._process_errors(errors)
        answered = disclosed(context, masked(errors))
        result = PreExecutionError(data=None, errors=answered, extensions={})
        if self._metrics is not None:
            record_operation(self._metrics, self, document, operation_name, errors, result, started)
        return result


def _first_operation_name(document: Any) -> str | None:
    first: OperationDefinitionNode | None = get_first_operation(document)
    return None if first is None or first.name is None else first.name.value


def _coerced(error: Exception) -> GraphQLError:
    """An exception as a GraphQL error, keeping it as the original (as strawberry does)."""
    if isinstance(error, GraphQLError):
        return error
    return GraphQLError(str(error), original_error=error)
