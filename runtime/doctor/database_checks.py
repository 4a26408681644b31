"""Checks on Postgres: reachable, migrated to the newest revision, and where the followers stand."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import errors
from sqlalchemy.engine import make_url

from adapters.database import create_engine, libpq_url
from adapters.relay_checkpoint import RelayStatus, relay_status
from projections import projector
from projections.catalog import projection_names
from runtime.doctor.findings import (
    Finding,
    bounded,
    client_timeout_ms,
    failure_text,
    not_checked,
    ok,
    problem,
)

POSTGRES = "postgres"
MIGRATIONS = "migrations"


@dataclass(frozen=True)
class DatabaseFacts:
    """What the database says: its findings, and the followers' positions if it was read."""

    findings: list[Finding]
    projections: list[projector.ProjectionStatus] = field(default_factory=list)
    relay: RelayStatus | None = None
    unread_because: str = ""
    """Why the positions were not read (empty when they were)."""


def where(database_url: str) -> str:
    """The database's host, port and name, without its password."""
    url = make_url(database_url)
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


async def examine(database_url: str, within: float) -> DatabaseFacts:
    """Reachability, the schema's revision, and every projection's and the relay's position."""
    try:
        revision = await bounded(_revision(database_url, within), within)
    except (OSError, psycopg.Error, TimeoutError) as error:
        because = "Postgres is not reachable"
        return DatabaseFacts(
            [
                problem(
                    POSTGRES,
                    f"not reachable at {where(database_url)} ({failure_text(error, within)})",
                    "Start Postgres, or point SAGALINE_DATABASE_URL at it",
                ),
                not_checked(MIGRATIONS, because),
            ],
            unread_because=because,
        )
    findings = [ok(POSTGRES, f"reachable at {where(database_url)}"), migrations(revision)]
    if findings[-1].is_problem:
        return DatabaseFacts(findings, unread_because="the schema is not current")
    try:
        statuses, relay = await bounded(_positions(database_url), within)
    except Exception as error:  # any failure is reported, not raised
        findings.append(
            problem(POSTGRES, f"cannot read positions ({failure_text(error, within)})", "")
        )
        return DatabaseFacts(findings, unread_because="the positions could not be read")
    return DatabaseFacts(findings, statuses, relay)


def migrations(revision: str | None) -> Finding:
    """Whether the database's schema is at the newest migration this code knows."""
    # Imported here: Alembic logs as it loads, and the doctor quiets it first.
    from runtime.migrate import head_revision, known_revisions

    head = head_revision()
    if revision == head:
        return ok(MIGRATIONS, f"current (revision {head})")
    if revision is None:
        return problem(MIGRATIONS, "the database was never migrated", "Run `sagaline migrate`")
    if revision in known_revisions():
        return problem(
            MIGRATIONS,
            f"the database is at revision {revision}, the code expects {head}",
            "Run `sagaline migrate`",
        )
    return problem(
        MIGRATIONS,
        f"the database is at revision {revision}, which this code does not know (newest: {head})",
        "A newer release migrated it: run that release, not this one",
    )


async def _revision(database_url: str, within: float) -> str | None:
    """The database's Alembic revision, None if it was never migrated."""
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), connect_timeout=client_timeout_ms(within) // 1000, autocommit=True
    ) as conn:
        try:
            row = await (await conn.execute("SELECT version_num FROM alembic_version")).fetchone()
        except errors.UndefinedTable:
            return None
    return None if row is None else str(row[0])


async def _positions(database_url: str) -> tuple[list[projector.ProjectionStatus], RelayStatus]:
    engine = create_engine(database_url, pool_size=1)
    try:
        return await projector.status(engine, projection_names()), await relay_status(engine)
    finally:
        await engine.dispose()
