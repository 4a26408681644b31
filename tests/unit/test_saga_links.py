"""Who is shown a saga's link into the Temporal UI: operators only."""

from __future__ import annotations

from typing import Any, cast

import pytest
from starlette.requests import Request

from api.auth import Caller, Role, TokenCheck
from api.context import Context, Services
from api.sagas.operations import read_saga
from runtime.config import Settings
from workflows.saga import SagaState, SagaStatus


class CompletedSagaHandle:
    """A workflow handle whose `state` query answers a completed saga."""

    def __init__(self, workflow_id: str) -> None:
        self.id = workflow_id

    async def query(self, query: object) -> SagaState:
        return SagaState("TransferSaga", SagaStatus.COMPLETED)


class OneSagaTemporal:
    def get_workflow_handle_for(self, run: object, workflow_id: str) -> CompletedSagaHandle:
        return CompletedSagaHandle(workflow_id)


def context_of(caller: Caller) -> Context:
    services = Services(
        settings=Settings(temporal_ui_url="http://temporal-ui.internal:8233"),
        engine=cast(Any, None),
        temporal=cast(Any, OneSagaTemporal()),
        tokens=TokenCheck({}),
        feed=cast(Any, None),
        reads=cast(Any, None),
        primary_reads=cast(Any, None),
    )
    request = Request({"type": "http", "method": "POST", "headers": []})
    return Context(services=services, request=request, caller=caller)


async def test_an_operator_sees_the_sagas_temporal_ui_link() -> None:
    saga = await read_saga(context_of(Caller(Role.OPERATOR, "operator:x")), "t-1")
    assert saga.temporal_ui_url == (
        "http://temporal-ui.internal:8233/namespaces/default/workflows/transfer%2Ft-1"
    )


@pytest.mark.parametrize(
    "caller", [Caller(Role.CLIENT, "client:x"), Caller(Role.CUSTOMER, "customer:u", "u")]
)
async def test_a_client_or_customer_sees_no_temporal_ui_link(caller: Caller) -> None:
    saga = await read_saga(context_of(caller), "t-1")
    assert saga.status == "COMPLETED"
    assert saga.temporal_ui_url is None
