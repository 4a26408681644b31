"""Postgres credentials keep the port's contract; migration 0012 moves existing hashes."""

from __future__ import annotations

import asyncio
import json
import uuid

import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.credentials import PostgresCredentials
from adapters.event_store import PostgresEventStore
from runtime.embedded.postgres import create_database, drop_database
from runtime.migrate import migrate
from tests.credentials_contract import CredentialsContract


@pytest.fixture(scope="session")
def credentials(engine: AsyncEngine, store: PostgresEventStore) -> PostgresCredentials:
    return PostgresCredentials(engine, store)


class TestPostgresCredentials(CredentialsContract):
    pass


async def test_migration_moves_hashes_out_of_events_read_model_and_snapshots(
    database_url: str,
) -> None:
    url = make_url(database_url)
    maintenance = url.set(database="postgres").render_as_string(hide_password=False)
    name = f"sagaline_migration_{uuid.uuid4().hex[:12]}"
    await create_database(maintenance, name)
    migrated = url.set(database=name).render_as_string(hide_password=False)
    try:
        await asyncio.to_thread(migrate, migrated, "0011")
        registered = {
            "user_id": "u-old",
            "email": "old@example.com",
            "name": "Old",
            "password_hash": "h-old",
        }
        with psycopg.connect(migrated, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO events (event_id, stream_id, version, type, schema_version, data,"
                " metadata) VALUES (%s, 'u-old', 1, 'UserRegistered', 1, %s, '{}')",
                (uuid.uuid4(), json.dumps(registered)),
            )
            conn.execute(
                "INSERT INTO users VALUES ('u-old', 'old@example.com', 'Old', 'ACTIVE', now(),"
                " now(), 1, 'h-old'), ('u-lagging', 'l@example.com', 'L', 'ACTIVE', now(), now(),"
                " 1, 'h-lagging')"
            )
            conn.execute(
                "INSERT INTO snapshots VALUES ('u-old', 1, 'User', 1, %s)",
                (json.dumps({"password_hash": "h-old"}),),
            )
        await asyncio.to_thread(migrate, migrated)
        with psycopg.connect(migrated, autocommit=True) as conn:
            hashes = dict(
                conn.execute("SELECT user_id, password_hash FROM user_credentials").fetchall()
            )
            event = conn.execute("SELECT data, schema_version FROM events").fetchone()
            columns = {
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
                )
            }
            snapshots = conn.execute("SELECT count(*) FROM snapshots").fetchone()
        assert hashes == {"u-old": "h-old", "u-lagging": "h-lagging"}
        assert event is not None and "password_hash" not in event[0] and event[1] == 2
        assert event[0]["email"] == "old@example.com"
        assert "password_hash" not in columns
        assert snapshots == (0,)
    finally:
        await drop_database(maintenance, name)
