"""Limits on what a query may ask for, and masking of unexpected errors (outages excepted)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from adapters.outages import unavailable_service
from api.error_log import report_unexpected
from api.outages import service_unavailable

MAX_DEPTH = 8
MAX_TOKENS = 2_000
MAX_ALIASES = 15
MAX_SELECTION_COST = 300


def selection_cost(document: DocumentNode) -> int:
    """How many fields the document's operations select, each fragment counted where spread.

    Runs before validation, so it tolerates what validation would refuse: an unknown
    fragment costs nothing, and a spread inside its own fragment is not followed again.
    """
    fragments = {
        node.name.value: node
        for node in document.definitions
        if isinstance(node, FragmentDefinitionNode)
    }
    known: dict[str, int] = {}

    def cost(selections: SelectionSetNode | None, entered: frozenset[str]) -> int:
        total = 0
        for selection in selections.selections if selections else ():
            if isinstance(selection, FieldNode):
                total += 1 + cost(selection.selection_set, entered)
            elif isinstance(selection, InlineFragmentNode):
                total += cost(selection.selection_set, entered)
            elif isinstance(selection, FragmentSpreadNode):
                total += fragment_cost(selection.name.value, entered)
        return total

    def fragment_cost(name: str, entered: frozenset[str]) -> int:
        # Memoised, so a fragment spread many times (or fragments spreading each other
        # many times over) is counted in time linear in the document.
        if name in entered or name not in fragments:
            return 0
        if name not in known:
            known[name] = cost(fragments[name].selection_set, entered | {name})
        return known[name]

    return sum(
        cost(node.selection_set, frozenset())
        for node in document.definitions
        if isinstance(node, OperationDefinitionNode)
    )


class SelectionCostLimiter(SchemaExtension):
    """Refuses a document selecting more than `max_cost` fields, before the other validation.

    It must come first: validating a few hundred repeats of one field already takes about
    a second (the overlapping-fields rule compares every pair).
    """

    def __init__(self, max_cost: int) -> None:
        self.max_cost = max_cost

    def on_validate(self) -> Iterator[None]:
        document = self.execution_context.graphql_document
        if document is not None and self.execution_context.pre_execution_errors is None:
            cost = selection_cost(document)
            if cost > self.max_cost:
                self.execution_context.pre_execution_errors = [
                    GraphQLError(
                        f"the query selects {cost} fields, over the limit of {self.max_cost}",
                        extensions={"code": "QUERY_TOO_COSTLY"},
                    )
                ]
        yield


class MaskUnexpectedErrors(MaskErrors):
    """Unexpected errors reach the client as a correlation id; the details go to the log
    (api/error_log.py, which logged them already as the operation's errors were processed).

    An outage is not unexpected: the client is told which component is down, to retry.
    """

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        service = unavailable_service(error.original_error)
        if service is not None:
            return service_unavailable(error, service)
        correlation_id = report_unexpected(error)
        return GraphQLError(
            message=f"Unexpected error (correlation id {correlation_id}).",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "correlationId": correlation_id},
        )


def unexpected(error: GraphQLError) -> bool:
    """Whether an error came from a bug or an outage rather than from the request."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def safety_extensions(
    max_selection_cost: int = MAX_SELECTION_COST,
) -> list[Callable[[], SchemaExtension]]:
    """Factories of the extensions every request runs with (fresh state per request)."""
    return [
        lambda: SelectionCostLimiter(max_cost=max_selection_cost),
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaskUnexpectedErrors(should_mask_error=unexpected),
    ]
