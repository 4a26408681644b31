"""Customer requests admitted together: their users are read in one statement on the
primary, and each request is admitted or refused by its own user's row."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from adapters.database import GroupedReads, ReadPool
from api.auth import Caller, Role, TokenCheck
from api.context import Services
from projections.users import UserView, read_users, users
from runtime.config import Settings


async def test_customers_admitted_together_share_one_read_and_each_gets_its_own_answer(
    engine: AsyncEngine, database_url: str
) -> None:
    now = datetime.now(UTC)
    # Active and never locked; locked now; active again but locked after its session began.
    states = {"active": ("ACTIVE", 0), "locked": ("LOCKED", 3), "relocked": ("ACTIVE", 3)}
    ids = {name: f"user-{uuid.uuid4()}" for name in states}
    async with engine.begin() as conn:
        await conn.execute(
            users.insert(),
            [
                {
                    "id": ids[name],
                    "email": f"{uuid.uuid4()}@example.com",
                    "name": name,
                    "status": status,
                    "registered_at": now,
                    "last_updated": now,
                    "version": 4,
                    "locked_version": locked,
                }
                for name, (status, locked) in states.items()
            ],
        )
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
        customer(ids["locked"], 3),
        customer(ids["relocked"]),
        customer(ids["relocked"], 3),
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
