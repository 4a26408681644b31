"""Limits on what a query may ask for, and masking of unexpected errors (outages excepted).

Parsing and checking a document costs far more than answering a small query, and clients
send the same few query texts again and again. So each query text is parsed and checked
once (token limit, selection cost, then validation with the depth and alias rules in one
pass), and the outcome is kept in a bounded cache shared by the schema's requests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    GraphQLWrappingType,
    InlineFragmentNode,
    IntValueNode,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    Visitor,
    get_operation_ast,
    is_introspection_type,
    parse,
    visit,
)
from starlette.requests import Request
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import validate_document

from adapters.outages import unavailable_service
from api.error_log import report_unexpected
from api.outages import service_unavailable
from api.pagination import DEFAULT_PAGE, MAX_PAGE
from api.schema_disclosure import disclosed, rules_for

MAX_DEPTH = 8
MAX_TOKENS = 2_000
MAX_ALIASES = 15
MAX_SELECTION_COST = 300
# How many query texts keep their checked document, and the longest text kept: longer ones
# are parsed and checked every time, so the cache stays small whatever clients send.
CACHED_DOCUMENTS = 256
MAX_CACHED_QUERY_CHARS = 20_000
REQUEST_REFUSALS = (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError)
"""Strawberry's refusals of a request before execution. Over HTTP the view answers them with
400; on a websocket they reach the client as an `error` message, in words strawberry made
for the client ('Unknown operation named "B".'), so they are not masked as a bug."""


def kept_parsed(document: DocumentNode) -> bool:
    """Whether the document's query text is one the parsed-documents cache keeps."""
    location = document.loc
    return location is not None and len(location.source.body) <= MAX_CACHED_QUERY_CHARS


MAX_ANSWER_COST = 10_000
UNPAGED_ITEMS = MAX_PAGE
"""How many items a list of objects without pages (a user's accounts) is counted as: as many as
the largest page. A user's `accounts` answers at most that many (api/context.OWNER_ACCOUNTS):
for a user with more it is an error, so the estimate holds however many a customer opens."""


def selection_cost(
    document: DocumentNode,
    schema: GraphQLSchema | None = None,
    variables: Mapping[str, object] | None = None,
) -> int:
    """How many fields the document's operations select, each fragment counted where spread;
    with the schema, an estimate of how many values their answer may hold.

    The estimate counts what is selected under a list of objects once per item the list may
    hold: a connection's `edges` its page (`first`, from the document or `variables`,
    capped; 20 without it), any other list UNPAGED_ITEMS. So nested lists multiply, as their
    answer does. Introspection's lists, which only the schema's size bounds, count once.

    Runs before validation, so it tolerates what validation would refuse: an unknown field
    counts 1 (what it selects, once), an unknown fragment costs nothing, and a spread inside
    its own fragment is not followed again.
    """
    fragments = {
        node.name.value: node
        for node in document.definitions
        if isinstance(node, FragmentDefinitionNode)
    }
    known: dict[tuple[str, int | None], int] = {}
    defaults = {
        variable.variable.name.value: variable.default_value
        for node in document.definitions
        if isinstance(node, OperationDefinitionNode)
        for variable in node.variable_definitions or ()
    }

    def type_named(name: str) -> GraphQLNamedType | None:
        return None if schema is None else schema.get_type(name)

    def cost(
        selections: SelectionSetNode | None,
        parent: GraphQLNamedType | None,
        page: int | None,
        entered: frozenset[str],
    ) -> int:
        total = 0
        for selection in selections.selections if selections else ():
            if isinstance(selection, FieldNode):
                total += field_cost(selection, parent, page, entered)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = parent if condition is None else type_named(condition.name.value)
                total += cost(selection.selection_set, inner, page, entered)
            elif isinstance(selection, FragmentSpreadNode):
                total += fragment_cost(selection.name.value, page, entered)
        return total

    def field_cost(
        node: FieldNode, parent: GraphQLNamedType | None, page: int | None, entered: frozenset[str]
    ) -> int:
        definition = None
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            definition = parent.fields.get(node.name.value)
        if definition is None:
            return 1 + cost(node.selection_set, None, None, entered)
        of = definition.type
        if isinstance(of, GraphQLNonNull):
            of = of.of_type
        listed = isinstance(of, GraphQLList)
        while isinstance(of, GraphQLWrappingType):
            of = of.of_type
        items = 1
        if (
            listed
            and isinstance(of, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType)
            and not is_introspection_type(of)
        ):
            items = page if page is not None and node.name.value == "edges" else UNPAGED_ITEMS
        # A field taking `first` is a connection: its `edges` hold a page of that size.
        inner_page = page_asked(node, defaults, variables) if "first" in definition.args else None
        return 1 + items * cost(node.selection_set, of, inner_page, entered)

    def fragment_cost(name: str, page: int | None, entered: frozenset[str]) -> int:
        # Memoised, so a fragment spread many times (or fragments spreading each other
        # many times over) is counted in time linear in the document.
        if name in entered or name not in fragments:
            return 0
        if (name, page) not in known:
            fragment = fragments[name]
            parent = type_named(fragment.type_condition.name.value)
            known[name, page] = cost(fragment.selection_set, parent, page, entered | {name})
        return known[name, page]

    def root(operation: OperationDefinitionNode) -> GraphQLNamedType | None:
        if schema is None:
            return None
        return schema.get_root_type(operation.operation)

    return sum(
        cost(node.selection_set, root(node), None, frozenset())
        for node in document.definitions
        if isinstance(node, OperationDefinitionNode)
    )


def page_variables(document: DocumentNode) -> tuple[str, ...]:
    """The variables some field of the document takes its `first` from, in name order."""
    names: set[str] = set()

    def within(selections: SelectionSetNode | None) -> None:
        for selection in selections.selections if selections else ():
            if isinstance(selection, FieldNode):
                names.update(
                    argument.value.name.value
                    for argument in selection.arguments or ()
                    if argument.name.value == "first" and isinstance(argument.value, VariableNode)
                )
            if isinstance(selection, FieldNode | InlineFragmentNode):
                within(selection.selection_set)

    for node in document.definitions:
        if isinstance(node, OperationDefinitionNode | FragmentDefinitionNode):
            within(node.selection_set)
    return tuple(sorted(names))


ABSENT = "absent"
NOT_A_PAGE = "not a page"


def page_key(value: object) -> int | str | None:
    """A variable's value as far as a page's size depends on it (hashable, few of them)."""
    if value is None:
        return None
    if value == ABSENT:
        return ABSENT
    if isinstance(value, int) and not isinstance(value, bool):
        return max(1, min(value, MAX_PAGE))
    return NOT_A_PAGE


def page_asked(
    node: FieldNode,
    defaults: Mapping[str, ValueNode | None],
    variables: Mapping[str, object] | None,
) -> int:
    """The most items a connection field's page may hold, from its `first`."""
    first: object = next((a.value for a in node.arguments or () if a.name.value == "first"), None)
    if isinstance(first, VariableNode):
        name = first.name.value
        first = (variables or {}).get(name, defaults.get(name))
    if isinstance(first, IntValueNode):
        first = int(first.value)
    if first is None or isinstance(first, NullValueNode):
        return DEFAULT_PAGE
    if isinstance(first, int) and not isinstance(first, bool):
        return max(1, min(first, MAX_PAGE))
    # Not a number: coercing it will refuse the request; count it as the largest page.
    return MAX_PAGE


def over_cost(document: DocumentNode, max_cost: int) -> GraphQLError | None:
    """The refusal of a document selecting more than `max_cost` fields, if it does."""
    cost = selection_cost(document)
    if cost <= max_cost:
        return None
    return GraphQLError(
        f"the query selects {cost} fields, over the limit of {max_cost}",
        extensions={"code": "QUERY_TOO_COSTLY"},
    )


def over_answer_cost(
    document: DocumentNode,
    max_cost: int,
    schema: GraphQLSchema,
    variables: Mapping[str, object] | None,
) -> GraphQLError | None:
    """The refusal of a document whose answer may hold more than `max_cost` values."""
    cost = selection_cost(document, schema, variables)
    if cost <= max_cost:
        return None
    return GraphQLError(
        f"the answer may hold {cost} values (lists counted at their page size), over the"
        f" limit of {max_cost}",
        extensions={"code": "QUERY_TOO_COSTLY"},
    )


MAX_INTEGER_DIGITS = 200
"""The most digits an integer literal in a document may have: as many as the longest id.
Converting one of more than Python's limit (4,300) raises inside validation."""


class _LongIntegers(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[IntValueNode] = []

    def enter_int_value(self, node: IntValueNode, *_: object) -> None:
        if len(node.value.lstrip("-")) > MAX_INTEGER_DIGITS:
            self.found.append(node)


def over_long_integers(document: DocumentNode) -> list[GraphQLError]:
    """The refusals of the document's integer literals of more than MAX_INTEGER_DIGITS."""
    visitor = _LongIntegers()
    visit(document, visitor)
    return [
        GraphQLError(
            f"an integer of {len(node.value.lstrip('-'))} digits, over the limit of"
            f" {MAX_INTEGER_DIGITS}",
            nodes=[node],
            extensions={"code": "BAD_USER_INPUT"},
        )
        for node in visitor.found
    ]


class CheckedDocuments:
    """Each query text's parsed document and its errors, computed once per text.

    The selection cost is checked before the other validation: validating a few hundred
    repeats of one field already takes about a second (the overlapping-fields rule compares
    every pair). The depth and alias rules run inside that one validation pass. How much the
    answer may hold depends on the request's variables (a page's `first`), so it is checked
    for each request, after the rest (`answer_errors`).
    """

    def __init__(self, max_cost: int, max_answer_cost: int = MAX_ANSWER_COST) -> None:
        self.max_cost = max_cost
        self.max_answer_cost = max_answer_cost
        self.rules: tuple[type[ASTValidationRule], ...] = (
            *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
            *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
        )
        self._parsed = lru_cache(maxsize=CACHED_DOCUMENTS)(self._parse)
        self._checked = lru_cache(maxsize=CACHED_DOCUMENTS)(self._check_text)
        self._paged_by = lru_cache(maxsize=CACHED_DOCUMENTS)(self._page_variables)
        self._answered = lru_cache(maxsize=CACHED_DOCUMENTS)(self._answer_text)

    def document(self, query: str) -> DocumentNode:
        """The parsed document; raises GraphQLError on a syntax error or too many tokens."""
        if len(query) > MAX_CACHED_QUERY_CHARS:
            return self._parse(query)
        return self._parsed(query)

    def errors(
        self,
        schema: GraphQLSchema,
        query: str,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        """What is wrong with `document`, parsed from `query`: a fresh list, empty if nothing.

        Kept by query text, never by document: a document hashes all of its nodes.
        """
        if len(query) > MAX_CACHED_QUERY_CHARS or document is not self._parsed(query):
            return self._check(schema, document, rules)
        return list(self._checked(schema, query, rules))

    def answer_errors(
        self,
        schema: GraphQLSchema,
        query: str,
        document: DocumentNode,
        variables: Mapping[str, object] | None,
    ) -> list[GraphQLError]:
        """The refusal of a document whose answer, with these variables, may hold too much.

        Kept by query text and the page sizes its variables ask for.
        """
        if len(query) > MAX_CACHED_QUERY_CHARS or document is not self._parsed(query):
            return self._answer_check(schema, document, variables)
        given = variables or {}
        pages = tuple(page_key(given.get(name, ABSENT)) for name in self._paged_by(query))
        return list(self._answered(schema, query, pages))

    def _page_variables(self, query: str) -> tuple[str, ...]:
        return page_variables(self._parsed(query))

    def _answer_text(
        self, schema: GraphQLSchema, query: str, pages: tuple[int | str | None, ...]
    ) -> tuple[GraphQLError, ...]:
        names = self._paged_by(query)
        # NOT_A_PAGE stays a value that is not a number: it counts as the largest page.
        variables = {name: page for name, page in zip(names, pages, strict=True) if page != ABSENT}
        return tuple(self._answer_check(schema, self._parsed(query), variables))

    def _answer_check(
        self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, object] | None
    ) -> list[GraphQLError]:
        refusal = over_answer_cost(document, self.max_answer_cost, schema, variables)
        return [] if refusal is None else [refusal]

    @staticmethod
    def _parse(query: str) -> DocumentNode:
        return parse(query, max_tokens=MAX_TOKENS)

    def _check_text(
        self, schema: GraphQLSchema, query: str, rules: tuple[type[ASTValidationRule], ...]
    ) -> list[GraphQLError]:
        return self._check(schema, self._parsed(query), rules)

    def _check(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        refusal = over_cost(document, self.max_cost)
        if refusal is not None:
            return [refusal]
        # Before validation, which would convert each one to an int.
        long_integers = over_long_integers(document)
        if long_integers:
            return long_integers
        return validate_document(schema, document, (*rules, *self.rules))


class DocumentChecks(SchemaExtension):
    """Parses and checks a request's document through the schema's `CheckedDocuments`."""

    def __init__(self, checked: CheckedDocuments) -> None:
        self.checked = checked

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            # A syntax error or too many tokens: left to strawberry's own parse, which answers
            # it as a request error (with the same limit, set below).
            with contextlib.suppress(GraphQLError):
                context.graphql_document = self.checked.document(context.query)
            context.parse_options["max_tokens"] = MAX_TOKENS
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            rules = rules_for(context.context, context.validation_rules)
            # `operation_name` falls back to the first operation's; what the client sent is
            # kept apart (strawberry has no public name for it).
            sent_name = context._provided_operation_name
            errors = (
                unchosen_operation(document, sent_name)
                or self.checked.errors(context.schema._schema, context.query or "", document, rules)
                or self.checked.answer_errors(
                    context.schema._schema, context.query or "", document, context.variables
                )
                or subscription_over_http(context.context, document, context.operation_name)
            )
            context.pre_execution_errors = disclosed(context.context, errors)
        yield

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = disclosed(self.execution_context.context, list(result.errors))


def anonymised(error: GraphQLError) -> GraphQLError:
    """What the client is told of an unexpected error: its correlation id, or the outage."""
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


def masked(errors: list[GraphQLError]) -> list[GraphQLError]:
    """The errors as the client gets them: each unexpected one anonymised."""
    return [anonymised(error) if unexpected(error) else error for error in errors]


MISSING_OPERATION_NAME = "Must provide operation name if query contains multiple operations."


def unchosen_operation(document: DocumentNode, operation_name: str | None) -> list[GraphQLError]:
    """The refusal of a document of several operations sent without an operationName:
    running the first would guess which one the client meant (GraphQL over HTTP makes it a
    request error; graphql-core's `execute` refuses it in these words)."""
    if operation_name is not None:
        return []
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return [GraphQLError(MISSING_OPERATION_NAME)] if len(operations) > 1 else []


def subscription_over_http(
    context: object, document: DocumentNode, operation_name: str | None
) -> list[GraphQLError]:
    """The refusal of a subscription sent as an HTTP request: it is served over the
    websocket only, where its caller's session is watched for as long as it runs."""
    request = getattr(context, "request", None)
    operation = get_operation_ast(document, operation_name)
    if not isinstance(request, Request) or operation is None:
        return []
    if operation.operation is not OperationType.SUBSCRIPTION:
        return []
    return [
        GraphQLError(
            "subscriptions are served over a graphql-transport-ws websocket at this URL, "
            "not over HTTP",
            nodes=[operation],
            extensions={"code": "BAD_REQUEST"},
        )
    ]


class MaskUnexpectedErrors(MaskErrors):
    """Unexpected errors reach the client as a correlation id; the details go to the log
    (api/error_log.py, which logged them already as the operation's errors were processed).

    An outage is not unexpected: the client is told which component is down, to retry.
    """

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return anonymised(error)


def unexpected(error: GraphQLError) -> bool:
    """Whether an error came from a bug or an outage rather than from the request."""
    original = error.original_error
    return original is not None and not isinstance(original, (GraphQLError, *REQUEST_REFUSALS))


def safety_extensions(
    max_selection_cost: int = MAX_SELECTION_COST, checked: CheckedDocuments | None = None
) -> list[Callable[[], SchemaExtension]]:
    """Factories of the extensions every request runs with (fresh state per request), over
    one cache of checked documents for the schema they are given to (`checked`, or a new
    one with `max_selection_cost`)."""
    if checked is None:
        checked = CheckedDocuments(max_selection_cost)
    return [
        lambda: DocumentChecks(checked),
        lambda: MaskUnexpectedErrors(should_mask_error=unexpected),
    ]
