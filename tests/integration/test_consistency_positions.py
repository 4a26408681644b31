"""`consistentWith` against the real store: a position up to the head is waited on (bounded,
in a limited number of slots); one past the head is refused at once, taking no slot."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, cast

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from adapters.database import ReadPool, create_engine
from adapters.event_store import PostgresEventStore
from adapters.schema import checkpoints
from api.auth import Caller, Role, TokenCheck
from api.context import Context, Services
from api.schema import build_schema
from domain.repository import Repository
from domain.users import User
from projections.projector import checkpoint_name
from runtime.config import Settings

USER = 'query($at: String) { user(id: "nobody", consistentWith: $at) { id } }'
TIMEOUT_SECONDS = 0.3
# For the refusal said to come at once: far above a busy machine's delays, so a refusal that
# waited out the bound shows as one, and the machine's load does not.
LONG_TIMEOUT_SECONDS = 10.0


async def unprojected_head(store: PostgresEventStore) -> int:
    """The head after a new event no projector has run over (none runs in these tests)."""
    user = User(f"user-{uuid.uuid4()}")
    user.register(f"{uuid.uuid4()}@example.com", "Q")
    await Repository(store).save(user, lambda _: uuid.uuid4(), {})
    return await store.head_position()


def context(
    engine: AsyncEngine,
    store: PostgresEventStore,
    url: str,
    waits: int,
    read_models: AsyncEngine | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> Context:
    settings = Settings(
        database_url=url,
        consistency_timeout_seconds=timeout,
        api_max_consistency_waits=waits,
    )
    services = Services(
        settings=settings,
        engine=engine,
        temporal=cast(Any, None),
        tokens=TokenCheck({}),
        feed=cast(Any, None),
        reads=ReadPool(url, 1),
        primary_reads=ReadPool(url, 1),
        read_models=read_models,
    )
    request = Request({"type": "http", "method": "POST", "headers": []})
    return Context(services=services, request=request, caller=Caller(Role.CLIENT, "test"))


def codes(result: Any) -> list[str]:
    return [error.extensions["code"] for error in result.errors or []]


async def test_a_position_past_the_head_is_refused_at_once_without_a_wait_slot(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    head = await unprojected_head(store)
    ctx = context(engine, store, database_url, waits=1, timeout=LONG_TIMEOUT_SECONDS)
    started = time.monotonic()
    # Every slot taken: a query that waited would be refused as TOO_MANY_CONSISTENCY_WAITS.
    with ctx.services.consistency_waits.slot():
        result = await build_schema().execute(USER, {"at": str(head + 1)}, context_value=ctx)
    assert codes(result) == ["BAD_USER_INPUT"], result.errors
    message = result.errors[0].message  # type: ignore[index]
    assert message == f"consistentWith {head + 1} is not a position a mutation returned"
    assert time.monotonic() - started < LONG_TIMEOUT_SECONDS


async def test_the_head_itself_is_waited_on_until_the_bound(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    head = await unprojected_head(store)
    ctx = context(engine, store, database_url, waits=1)
    started = time.monotonic()
    result = await build_schema().execute(USER, {"at": str(head)}, context_value=ctx)
    assert codes(result) == ["CONSISTENCY_TIMEOUT"], result.errors
    assert time.monotonic() - started >= TIMEOUT_SECONDS


async def test_waits_over_the_slots_are_refused_at_once(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    head = await unprojected_head(store)
    ctx = context(engine, store, database_url, waits=2)
    schema = build_schema()
    answers = await asyncio.gather(
        *(schema.execute(USER, {"at": str(head)}, context_value=ctx) for _ in range(5))
    )
    found = sorted(code for answer in answers for code in codes(answer))
    assert found == ["CONSISTENCY_TIMEOUT"] * 2 + ["TOO_MANY_CONSISTENCY_WAITS"] * 3, found


async def test_a_position_another_read_model_reached_is_waited_on_with_the_primary_down(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    head = await unprojected_head(store)
    other = checkpoint_name(f"test-{uuid.uuid4()}")
    async with engine.begin() as conn:
        await conn.execute(insert(checkpoints).values(name=other, position=head))
    down = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/down")
    try:
        ctx = context(down, store, database_url, waits=1, read_models=engine)
        result = await build_schema().execute(USER, {"at": str(head)}, context_value=ctx)
        assert codes(result) == ["CONSISTENCY_TIMEOUT"], result.errors
    finally:
        await down.dispose()
        async with engine.begin() as conn:
            await conn.execute(delete(checkpoints).where(checkpoints.c.name == other))
