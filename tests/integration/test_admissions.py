"""Customer requests admitted together: their users are read in one statement on the
primary, and each request is admitted or refused by its own user's row."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from adapters.database import GroupedReads, ReadPool
from adapters.event_store import PostgresEventStore
from api.auth import Caller, Role, TokenCheck
from api.context import Services
from domain.repository import Repository
from domain.users import User
from projections.projector import Projector
from projections.users import UsersProjection, UserView, read_users
from runtime.config import Settings
from tests.projecting import project_through


async def test_customers_admitted_together_share_one_read_and_each_gets_its_own_answer(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    # Through events and the projection (other tests rebuild the read model from events).
    repository = Repository(store)
    ids = {}
    for name in ("active", "locked", "relocked"):
        user = User(f"user-{uuid.uuid4()}")
        user.register(f"{uuid.uuid4()}@example.com", name)
        if name != "active":
            user.lock("test")  # the user's version 2: sessions of epoch 2 began after it
        if name == "relocked":
            user.unlock()
        await repository.save(user, lambda _: uuid.uuid4(), {})
        ids[name] = user.id
    projector = Projector(engine, store, UsersProjection(), batch_size=2_000)
    await project_through(engine, projector, await store.head_position())
    services = Services(
        settings=Settings(database_url=database_url),
        engine=engine,
        temporal=cast(Client, None),
        tokens=TokenCheck({}),
        feed=cast(Any, None),
        reads=cast(Any, None),
        primary_reads=ReadPool(database_url, 1),
    )
    statements: list[list[str]] = []

    async def counted(conn: Any, user_ids: list[str]) -> dict[str, UserView]:
        statements.append(user_ids)
        return await read_users(conn, user_ids)

    services.__dict__["admissions"] = GroupedReads(services.primary_reads, counted)

    def customer(user_id: str, epoch: int = 0) -> Caller:
        return Caller(Role.CUSTOMER, f"session:{user_id}", user_id=user_id, lock_epoch=epoch)

    unknown = f"user-{uuid.uuid4()}"
    callers = [
        customer(ids["active"]),
        customer(ids["locked"], 2),
        customer(ids["relocked"]),
        customer(ids["relocked"], 2),
        customer(unknown),
        customer(ids["active"]),
        Caller(Role.CLIENT, "client"),
        None,
    ]
    try:
        admitted = await asyncio.gather(*(services.admit(caller) for caller in callers))
    finally:
        await services.primary_reads.close()

    assert admitted == [
        callers[0],
        None,  # locked
        None,  # locked since the session began
        callers[3],  # its session began after the lock, and the user is active again
        None,  # no such user
        callers[5],
        callers[6],  # an API token is not a user's: nothing to read
        None,
    ]
    assert [sorted(user_ids) for user_ids in statements] == [
        sorted({ids["active"], ids["locked"], ids["relocked"], unknown})
    ]
