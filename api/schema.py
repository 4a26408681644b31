"""The GraphQL schema: every feature's queries and mutations merged."""

from __future__ import annotations

from decimal import Decimal

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.tools import merge_types

from api.accounts.mutations import AccountMutations
from api.accounts.queries import AccountQueries
from api.audit.resolvers import AuditQueries, AuditSubscriptions
from api.execution import SagalineSchema
from api.inputs import DECIMAL_SCALAR, guard
from api.metrics import GraphQLMetrics, count_mutation_results
from api.safety import MAX_ANSWER_COST, MAX_SELECTION_COST, CheckedDocuments
from api.sagas.resolvers import SagaMutations, SagaQueries, SagaSubscriptions
from api.system.resolvers import SystemMutations, SystemQueries
from api.transfers.mutations import TransferMutations
from api.transfers.queries import TransferQueries, TransferSubscriptions
from api.users.mutations import UserMutations
from api.users.queries import SuspiciousActivityQueries, UserQueries

NAMES_KEPT = 4096
"""How many converted names `RememberedNames` keeps (the schema has a few hundred)."""


class RememberedNames(NameConverter):
    """Strawberry's naming, each Python name converted once: strawberry names every argument
    of a field again on each call of its resolver (to camelCase, character by character)."""

    def __init__(self) -> None:
        super().__init__()
        self._converted: dict[tuple[bool, str], str] = {}

    def apply_naming_config(self, name: str) -> str:
        key = (self.auto_camel_case, name)
        converted = self._converted.get(key)
        if converted is None:
            converted = super().apply_naming_config(name)
            if len(self._converted) < NAMES_KEPT:
                self._converted[key] = converted
        return converted


def build_schema(
    max_selection_cost: int = MAX_SELECTION_COST,
    metrics: GraphQLMetrics | None = None,
    max_answer_cost: int = MAX_ANSWER_COST,
) -> strawberry.Schema:
    """The schema clients see, refusing documents that select more fields than the bound, or
    whose answer may hold more values than its bound (api/safety.py).

    Every operation's arguments pass the input boundary (api/inputs.py) first. With
    `metrics`, operations and mutation answers are counted (api/metrics.py).
    """
    query = merge_types(
        "Query",
        (
            UserQueries,
            SuspiciousActivityQueries,
            AccountQueries,
            TransferQueries,
            SagaQueries,
            AuditQueries,
            SystemQueries,
        ),
    )
    mutation = merge_types(
        "Mutation",
        (UserMutations, AccountMutations, TransferMutations, SagaMutations, SystemMutations),
    )
    subscription = merge_types(
        "Subscription", (TransferSubscriptions, SagaSubscriptions, AuditSubscriptions)
    )
    guard((query, mutation, subscription))
    count_mutation_results((mutation,))
    return SagalineSchema(
        checked=CheckedDocuments(max_selection_cost, max_answer_cost),
        metrics=metrics,
        query=query,
        mutation=mutation,
        subscription=subscription,
        scalar_overrides={Decimal: DECIMAL_SCALAR},
        config=StrawberryConfig(name_converter=RememberedNames()),
    )
