"""A registration under a used commandId is a retry only with the same request and password;
one that is not changes nothing, not even the password held for the first registration."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from adapters.credentials import hold_credential
from adapters.database import ReadPool
from adapters.event_store import PostgresEventStore
from adapters.payloads import data_converter
from adapters.schema import held_credentials
from api.auth import Caller, Role, TokenCheck
from api.context import Context, Services
from api.dispatch import aggregate_id_for
from api.live import EventFeed
from api.schema import build_schema
from domain.credentials import PasswordCredential
from domain.passwords import hash_password, verify_password
from domain.users import RegisterUser
from runtime.config import Settings

REGISTER = """
mutation($in: RegisterUserInput!) {
  registerUser(input: $in) {
    __typename ... on CommandPending { commandId } ... on InvalidInput { field }
  }
}"""
FIRST_PASSWORD = "the-first-password"


class RunningRegistration:
    """A Temporal client whose registration workflow was started with `first`, still running."""

    def __init__(self, first: RegisterUser) -> None:
        self.first = first

    async def start_workflow(self, run: Any, command: Any, **options: Any) -> None:
        raise WorkflowAlreadyStartedError(options["id"], "RegisterUserWorkflow")

    def get_workflow_handle(self, workflow_id: str, **options: Any) -> RunningRegistration:
        return self

    async def fetch_history_events(self, page_size: int) -> AsyncIterator[HistoryEvent]:
        event = HistoryEvent()
        payloads = await data_converter().encode([self.first])
        event.workflow_execution_started_event_attributes.input.payloads.extend(payloads)
        yield event

    async def result(self) -> None:
        await asyncio.Event().wait()


async def first_registration(engine: AsyncEngine) -> RegisterUser:
    """A registration whose hash is held and whose workflow's activity has not run yet."""
    command_id = f"first-{uuid.uuid4()}"
    user_id = aggregate_id_for("user", command_id)
    first = RegisterUser(command_id, user_id, f"{command_id}@example.com", "First")
    password_hash = hash_password(FIRST_PASSWORD, secrets.token_bytes(16))
    async with engine.begin() as conn:
        held = await hold_credential(conn, command_id, PasswordCredential(user_id, password_hash))
    assert held is None
    return first


async def register(
    engine: AsyncEngine,
    store: PostgresEventStore,
    database_url: str,
    first: RegisterUser,
    **request: str,
) -> dict[str, Any]:
    settings = Settings(database_url=database_url, command_timeout_seconds=0.2)
    services = Services(
        settings=settings,
        engine=engine,
        temporal=cast(Client, RunningRegistration(first)),
        tokens=TokenCheck({}),
        feed=EventFeed(store, database_url),
        reads=ReadPool(database_url, 1),
        primary_reads=ReadPool(database_url, 1),
    )
    context = Context(
        services=services,
        request=Request({"type": "http", "method": "POST", "headers": []}),
        caller=Caller(Role.CLIENT, "test"),
    )
    variables = {"in": {"commandId": first.command_id, **request}}
    result = await build_schema().execute(REGISTER, variables, context_value=context)
    assert result.errors is None, result.errors
    data: dict[str, Any] = result.data  # type: ignore[assignment]
    return cast(dict[str, Any], data["registerUser"])


async def held_password_matches(engine: AsyncEngine, command_id: str, password: str) -> bool:
    query = select(held_credentials.c.password_hash).where(
        held_credentials.c.command_id == command_id
    )
    async with engine.connect() as conn:
        held = (await conn.execute(query)).scalar_one_or_none()
    return held is not None and verify_password(password, held)


async def test_another_email_under_a_used_command_id_leaves_the_first_password_held(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    first = await first_registration(engine)
    other = {"email": f"other-{uuid.uuid4()}@example.com", "name": "First"}
    answered = await register(
        engine, store, database_url, first, password="another-password", **other
    )
    assert answered == {"__typename": "InvalidInput", "field": "commandId"}
    assert await held_password_matches(engine, first.command_id, FIRST_PASSWORD)


async def test_another_password_under_a_used_command_id_is_no_retry(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    first = await first_registration(engine)
    same = {"email": first.email, "name": first.name}
    answered = await register(engine, store, database_url, first, password="another-one", **same)
    assert answered == {"__typename": "InvalidInput", "field": "commandId"}
    assert await held_password_matches(engine, first.command_id, FIRST_PASSWORD)


async def test_the_same_registration_again_is_a_retry_and_keeps_the_first_hold(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    first = await first_registration(engine)
    same = {"email": first.email, "name": first.name}
    answered = await register(engine, store, database_url, first, password=FIRST_PASSWORD, **same)
    assert answered == {"__typename": "CommandPending", "commandId": first.command_id}
    assert await held_password_matches(engine, first.command_id, FIRST_PASSWORD)
