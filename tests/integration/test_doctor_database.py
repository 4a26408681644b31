"""The doctor's Postgres checks on real databases: current, behind, never migrated, absent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from runtime.doctor.database_checks import examine
from runtime.doctor.findings import Verdict
from runtime.embedded.postgres import create_database, drop_database, server_reachable
from runtime.migrate import head_revision, migrate
from runtime.ports import free_port
from tests.conftest import LOCAL_POSTGRES

WITHIN = 10.0


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """A database of its own, with no schema, on the machine's Postgres."""
    if not await server_reachable(LOCAL_POSTGRES):
        pytest.skip("no local Postgres to create a scratch database on")
    name = f"sagaline_doctor_{uuid.uuid4().hex[:12]}"
    await create_database(LOCAL_POSTGRES, name)
    try:
        yield LOCAL_POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await drop_database(LOCAL_POSTGRES, name)


async def test_a_current_database_is_ok_and_its_followers_positions_are_read(
    database_url: str,
) -> None:
    found = await examine(database_url, WITHIN)

    assert [f.verdict for f in found.findings] == [Verdict.OK, Verdict.OK]
    assert found.findings[1].says == f"current (revision {head_revision()})"
    assert {status.name for status in found.projections} >= {"users", "accounts"}
    assert found.relay is not None


async def test_a_database_behind_the_code_or_never_migrated_is_told_to_migrate(
    empty_database: str,
) -> None:
    never = await examine(empty_database, WITHIN)
    await asyncio.to_thread(migrate, empty_database, "0014")
    behind = await examine(empty_database, WITHIN)

    assert never.findings[1].verdict is Verdict.PROBLEM
    assert never.findings[1].says == "the database was never migrated"
    assert behind.findings[1].verdict is Verdict.PROBLEM
    assert behind.findings[1].says == (
        f"the database is at revision 0014, the code expects {head_revision()}"
    )
    assert behind.findings[1].todo == "Run `sagaline migrate`"
    assert behind.projections == [] and behind.relay is None
    assert behind.unread_because == "the schema is not current"


async def test_postgres_that_is_not_there_is_one_problem_line_within_the_bound() -> None:
    port = free_port()
    loop = asyncio.get_running_loop()
    started = loop.time()
    found = await examine(f"postgresql://postgres@127.0.0.1:{port}/sagaline", WITHIN)

    assert loop.time() - started < WITHIN + 1
    postgres, migrations = found.findings
    assert postgres.verdict is Verdict.PROBLEM
    assert postgres.says == f"not reachable at 127.0.0.1:{port}/sagaline (connection refused)"
    assert "SAGALINE_DATABASE_URL" in postgres.todo
    assert migrations.verdict is Verdict.NOT_CHECKED
