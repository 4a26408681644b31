"""Plain leaf fields completed in one step: an attribute read, then the scalar's output.

Most fields the API answers are attributes of a strawberry type (`Account.balance`,
`Transfer.status`): strawberry resolves them by reading the attribute, with no `Info`, no
arguments and no extension. graphql-core still builds, for each one, a resolve info of
fifteen entries and walks `complete_value` (non-null, then leaf) before the scalar's
`coerce_output_value`. For a query such as `account(id)`, eight such fields cost more than
its resolver does.

`LeafFieldsExecutor` answers those fields directly: it reads the attribute as strawberry's
resolver would and coerces it with the field's scalar or enum. Whatever that step cannot
answer by itself (a null for a non-null field, a value the scalar refuses, an exception, an
awaitable) goes through graphql-core's own `execute_field`, which reads the attribute again
and answers it as before, errors and their paths included (an attribute is read twice only
then: basic fields are plain attributes). A selection made only of such fields (an
`Account`'s eight) is answered in one loop, with no path built and no call per field; one
that holds any other field, or a leaf that step cannot answer, goes field by field.

Which fields qualify is decided once per schema (`plain_leaf_fields`): a strawberry field
that is basic (no resolver, no extension), takes no argument, keeps strawberry's attribute
resolver and has a scalar or enum type, non-null or not. No middleware may be in play (the
schema passes none).

The same executor binds its resolver helpers (`info.async_helpers`) when they are asked for
instead of keeping them, so that an operation's executor is not a reference cycle: see
`LeafFieldsExecutor.async_helpers`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from graphql import (
    DocumentNode,
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLResolveInfoHelpers,
    GraphQLSchema,
    get_argument_values,
    is_leaf_type,
    is_non_null_type,
)
from graphql.execution.executor import default_field_resolver, default_type_resolver, to_nodes
from graphql.pyutils import Undefined
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

from api.root_fields import PlainRoot, RootFields, plain_root_fields
from api.safety import kept_parsed
from api.variable_plans import PLANS_KEPT, VariablePlan, variable_plan

PlainLeaf = tuple[Callable[[Any, str], Any], str, GraphQLLeafType, bool]
"""A plain leaf field: strawberry's attribute resolver and the attribute's name (what its
`get_result` calls for a basic field), its scalar or enum, and whether it is non-null."""
LeafFields = dict[str, dict[str, PlainLeaf]]
"""The plain leaf fields of each object type, by type name then field name."""


def plain_leaf_fields(schema: GraphQLSchema) -> LeafFields:
    """The fields of the schema's object types that `LeafFieldsExecutor` may answer."""
    found: LeafFields = {}
    for type_name, named_type in schema.type_map.items():
        if not isinstance(named_type, GraphQLObjectType) or type_name.startswith("__"):
            continue
        for field_name, field in named_type.fields.items():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if (
                not isinstance(definition, StrawberryField)
                or not definition.is_basic_field
                or field.args
                or field.subscribe is not None
                or not getattr(field.resolve, "_is_default", False)
            ):
                continue
            output = field.type
            non_null = is_non_null_type(output)
            inner = output.of_type if non_null else output
            if is_leaf_type(inner):
                found.setdefault(type_name, {})[field_name] = (
                    definition.default_resolver,
                    definition.python_name,
                    inner,
                    non_null,
                )
    return found


def leaf_value(leaf: PlainLeaf, source: Any) -> Any:
    """The field's answer, or Undefined for graphql-core to answer (and report) instead."""
    resolve, attribute, leaf_type, non_null = leaf
    try:
        value = resolve(source, attribute)
    except Exception:
        return Undefined
    if value is None:
        return Undefined if non_null else None
    if value is Undefined or isinstance(value, Exception):
        return Undefined
    if optimized_is_awaitable(value):
        # graphql-core reads the attribute again and awaits that one: this one is closed
        # unstarted (not left to warn that it was never awaited).
        if isinstance(value, Coroutine):
            value.close()
        return Undefined
    try:
        coerced = leaf_type.coerce_output_value(value)
    except Exception:
        return Undefined
    return Undefined if coerced is None else coerced


class LeafFieldsExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, answering plain leaf fields in one step. A schema sets
    `leaf_fields` on its own subclass (`executor_for`)."""

    leaf_fields: ClassVar[LeafFields] = {}
    root_fields: ClassVar[RootFields] = {}
    variable_plans: ClassVar[dict[tuple[int, str | None], VariablePlan | None]] = {}

    @classmethod
    def build(
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        root_value: Any = None,
        context_value: Any = None,
        raw_variable_values: dict[str, Any] | None = None,
        operation_name: str | None = None,
        field_resolver: Any = None,
        type_resolver: Any = None,
        subscribe_field_resolver: Any = None,
        max_coercion_errors: int = 50,
        enable_early_execution: bool = False,
        middleware: Any = None,
        is_awaitable: Any = None,
        is_async_iterable: Any = None,
        hide_suggestions: bool = False,
        abort_signal: Any = None,
        hooks: Any = None,
        **custom_args: Any,
    ) -> Any:
        """graphql-core's executor, its operation and variables taken from the document's
        plan (api/variable_plans.py) when the plan takes these variables as they are."""
        plans = cls.variable_plans
        key = (id(document), operation_name)
        plan = plans.get(key)
        if plan is not None and plan.document is document and middleware is None:
            variable_values = plan.variable_values(raw_variable_values or {})
            if variable_values is not None:
                return cls(
                    schema,
                    {},
                    {},
                    root_value,
                    context_value,
                    plan.operation,
                    variable_values,
                    field_resolver or default_field_resolver,
                    type_resolver or default_type_resolver,
                    subscribe_field_resolver or default_field_resolver,
                    enable_early_execution,
                    None,
                    is_awaitable,
                    is_async_iterable,
                    hide_suggestions=hide_suggestions,
                    abort_signal=abort_signal,
                    hooks=hooks,
                    **custom_args,
                )
        built = super().build(
            schema,
            document,
            root_value,
            context_value,
            raw_variable_values,
            operation_name,
            field_resolver,
            type_resolver,
            subscribe_field_resolver,
            max_coercion_errors,
            enable_early_execution,
            middleware,
            is_awaitable,
            is_async_iterable,
            hide_suggestions=hide_suggestions,
            abort_signal=abort_signal,
            hooks=hooks,
            **custom_args,
        )
        if plan is None and not isinstance(built, list) and kept_parsed(document):
            # Built once the generic way, so the schema and the document are known good.
            if len(plans) >= PLANS_KEPT:
                plans.clear()
            plans[key] = variable_plan(schema, document, operation_name)
        return built

    @property
    def async_helpers(self) -> GraphQLResolveInfoHelpers:
        """The helpers a resolver's info offers, bound to this executor when asked for.

        graphql-core's executor keeps them as an attribute, bound methods of itself: a
        reference cycle, so every operation's executor, with its context, request and
        collected fields, waited for the cyclic garbage collector, whose passes over the
        requests still in flight then cost more than a small query. Both helpers act only on
        state the executor shares with its copies, so binding them on each use is the same.
        """
        return GraphQLResolveInfoHelpers(gather=self.gather_async_work, track=self.track_async_work)

    @async_helpers.setter
    def async_helpers(self, helpers: GraphQLResolveInfoHelpers) -> None:
        pass  # what graphql-core's __init__ would store, the cycle

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Any,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        """A selection of plain leaf fields only, answered in one loop (no path, no call per
        field); any other selection, or one whose leaf needs graphql-core, field by field."""
        fields = self.leaf_fields.get(parent_type.name)
        if fields is not None and self.middleware_manager is None:
            results: dict[str, Any] = {}
            for response_name, field_details_list in grouped_field_set.items():
                leaf = fields.get(field_details_list[0].node.name.value)
                if leaf is None:
                    break
                answer = leaf_value(leaf, source_value)
                if answer is Undefined:
                    break
                results[response_name] = answer
            else:
                return results
        return super().execute_fields(
            parent_type, source_value, path, grouped_field_set, position_context
        )

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Any,
        position_context: Any,
    ) -> Any:
        if self.middleware_manager is None:
            name = field_details_list[0].node.name.value
            fields = self.leaf_fields.get(parent_type.name)
            if fields is not None:
                leaf = fields.get(name)
                if leaf is not None:
                    answer = leaf_value(leaf, source)
                    if answer is not Undefined:
                        return answer
            roots = self.root_fields.get(parent_type.name)
            root = None if roots is None or self.abort_signal is not None else roots.get(name)
            if root is not None:
                return self.execute_root_field(
                    root, parent_type, source, field_details_list, path, position_context
                )
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def execute_root_field(
        self,
        root: PlainRoot,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Any,
        position_context: Any,
    ) -> Any:
        """A plain root field, as graphql-core's `execute_field` and strawberry's resolver
        chain answer it: the same resolve info, arguments, errors and completion."""
        field_def = root.field_def
        first = field_details_list[0]
        info = self.build_resolve_info(field_def, to_nodes(field_details_list), parent_type, path)
        try:
            arguments = (
                get_argument_values(
                    field_def,
                    first.node,
                    self.variable_values,
                    first.fragment_variable_values,
                    self.hide_suggestions,
                )
                if field_def.args or first.node.arguments
                else {}
            )
        except Exception as raw_error:
            self.handle_field_error(raw_error, field_def.type, field_details_list, path)
            return None
        return self.complete_root_field(
            root, source, arguments, field_details_list, info, path, position_context
        )

    async def complete_root_field(
        self,
        root: PlainRoot,
        source: Any,
        arguments: dict[str, Any],
        field_details_list: Any,
        info: GraphQLResolveInfo[Any],
        path: Any,
        position_context: Any,
    ) -> Any:
        """The root field's answer completed, or its error handled.

        The boundary's checks and the call happen here, when the field's turn comes among
        the fields run together, as in strawberry's chain (a coroutine itself): a refusal
        raised at once would stop the sibling fields before they ran, and a non-null field's
        refusal would then drop their errors from the answer.
        """
        return_type = root.field_def.type
        try:
            resolved = await root.resolved(root.call(source, info, arguments))
            completed = self.complete_value(
                return_type, field_details_list, info, path, resolved, position_context
            )
            if self.is_awaitable(completed):
                completed = await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            completed = None
        return completed


def executor_for(schema: GraphQLSchema, config: StrawberryConfig) -> type[LeafFieldsExecutor]:
    """An executor class answering the schema's plain leaf fields and calling its plain root
    fields directly."""
    return type(
        "SchemaLeafFieldsExecutor",
        (LeafFieldsExecutor,),
        {
            "leaf_fields": plain_leaf_fields(schema),
            "root_fields": plain_root_fields(schema, config),
            "variable_plans": {},
        },
    )
