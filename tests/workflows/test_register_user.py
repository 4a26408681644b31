"""RegisterUser through a real Temporal dev server: deduplicated, rejections are outcomes."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.testing import ActivityEnvironment

from activities.users import UserActivities
from adapters.credentials import PostgresCredentials
from adapters.event_store import PostgresEventStore
from adapters.schema import held_credentials
from domain.credentials import PasswordCredential
from domain.repository import Repository
from domain.users import RegisterUser
from workflows.command_outcomes import CommandOutcome
from workflows.users import RegisterUserWorkflow, register_user_workflow_id

pytestmark = pytest.mark.usefixtures("worker")


def register_command(email: str | None = None, password_hash: str = "") -> RegisterUser:
    command_id = str(uuid.uuid4())
    return RegisterUser(
        command_id=command_id,
        user_id=f"user-{command_id}",
        email=email or f"{command_id}@example.com",
        name="Test User",
        password_hash=password_hash,
    )


@pytest.fixture
def credentials(engine: AsyncEngine, store: PostgresEventStore) -> PostgresCredentials:
    return PostgresCredentials(engine, store)


async def held(credentials: PostgresCredentials, command: RegisterUser) -> RegisterUser:
    """The command, once its password's hash is held for it (as the API does)."""
    credential = PasswordCredential(command.user_id, f"hash-of-{command.command_id}")
    await credentials.hold(command.command_id, credential)
    return command


async def held_count(engine: AsyncEngine, command_id: str) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).where(held_credentials.c.command_id == command_id)
        return int((await conn.execute(query)).scalar_one())


async def send(client: Client, task_queue: str, command: RegisterUser) -> CommandOutcome:
    workflow_id = register_user_workflow_id(command.command_id)
    try:
        handle = await client.start_workflow(
            RegisterUserWorkflow.run,
            command,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        handle = client.get_workflow_handle(workflow_id, result_type=CommandOutcome)
    return await handle.result()


async def test_register_user_appends_one_event_and_sets_the_held_hash(
    client: Client,
    task_queue: str,
    store: PostgresEventStore,
    engine: AsyncEngine,
    credentials: PostgresCredentials,
) -> None:
    command = await held(credentials, register_command())
    outcome = await send(client, task_queue, command)
    assert outcome.rejection is None and outcome.result is not None
    (event,) = await store.read_stream(command.user_id)
    assert event.type == "UserRegistered"
    assert event.position == outcome.result.position
    assert event.metadata["command_id"] == command.command_id
    assert await credentials.password_hash(command.user_id) == f"hash-of-{command.command_id}"
    assert await held_count(engine, command.command_id) == 0


async def test_a_command_sent_with_its_hash_before_hashes_were_held_still_sets_it(
    client: Client, task_queue: str, engine: AsyncEngine, credentials: PostgresCredentials
) -> None:
    command = register_command(password_hash="hash-in-the-command")
    outcome = await send(client, task_queue, command)
    assert outcome.result is not None
    assert await credentials.password_hash(command.user_id) == "hash-in-the-command"
    assert await held_count(engine, command.command_id) == 0


async def test_the_same_command_sent_twice_concurrently_runs_once(
    client: Client, task_queue: str, store: PostgresEventStore, credentials: PostgresCredentials
) -> None:
    command = await held(credentials, register_command())
    first, second = await asyncio.gather(
        send(client, task_queue, command), send(client, task_queue, command)
    )
    assert first == second
    assert len(await store.read_stream(command.user_id)) == 1
    again = await send(client, task_queue, command)
    assert again == first
    assert len(await store.read_stream(command.user_id)) == 1


async def test_a_taken_email_is_a_rejection_appends_nothing_and_lets_the_hash_go(
    client: Client,
    task_queue: str,
    store: PostgresEventStore,
    engine: AsyncEngine,
    credentials: PostgresCredentials,
) -> None:
    first = await held(credentials, register_command())
    await send(client, task_queue, first)
    second = await held(credentials, register_command(email=first.email))
    outcome = await send(client, task_queue, second)
    assert outcome.result is None
    assert outcome.rejection is not None
    assert outcome.rejection.type == "EmailAlreadyInUse"
    assert await store.read_stream(second.user_id) == []
    assert await credentials.password_hash(second.user_id) is None
    assert await held_count(engine, second.command_id) == 0


async def test_a_command_with_no_hash_held_fails_and_registers_nobody(
    client: Client, task_queue: str, store: PostgresEventStore
) -> None:
    command = register_command()
    outcome = await send(client, task_queue, command)
    assert outcome.result is None and outcome.failure is not None
    assert await store.read_stream(command.user_id) == []


async def test_a_retried_register_activity_appends_nothing_twice(
    store: PostgresEventStore, credentials: PostgresCredentials
) -> None:
    command = await held(credentials, register_command())
    activities = UserActivities(Repository(store), credentials)
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        environment.info, workflow_id=register_user_workflow_id(command.command_id)
    )
    first = await environment.run(activities.register_user, command)
    retried = await environment.run(activities.register_user, command)
    assert retried == first
    (registered,) = await store.read_stream(command.user_id)
    assert "password_hash" not in registered.data
    assert await credentials.password_hash(command.user_id) == f"hash-of-{command.command_id}"
