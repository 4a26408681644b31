"""The GraphQL schema: every feature's queries and mutations merged."""

from __future__ import annotations

from decimal import Decimal

import strawberry
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
    )
