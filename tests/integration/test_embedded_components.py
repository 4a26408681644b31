from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from runtime.embedded.broker import EmbeddedBroker
from runtime.embedded.postgres import EmbeddedPostgres, server_reachable
from runtime.embedded.process import ComponentStartError
from runtime.ports import PortInUse, free_port
from workflows import search_attributes


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    # Not pytest's 0700 tmp_path: embedded Postgres may run as another account.
    path = Path(tempfile.mkdtemp(prefix="sagaline-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_embedded_postgres_keeps_its_rows_across_a_restart(scratch_dir: Path) -> None:
    postgres = EmbeddedPostgres(scratch_dir, free_port())
    await postgres.start()
    try:
        async with await psycopg.AsyncConnection.connect(postgres.url) as conn:
            await conn.execute("CREATE TABLE greeting (text text)")
            await conn.execute("INSERT INTO greeting VALUES ('kept')")
    finally:
        await postgres.stop()
    assert not await server_reachable(postgres.url)

    await postgres.start()
    try:
        async with await psycopg.AsyncConnection.connect(postgres.url) as conn:
            rows = await (await conn.execute("SELECT text FROM greeting")).fetchall()
    finally:
        await postgres.stop()

    assert rows == [("kept",)]
    assert postgres.url == f"postgresql://postgres@127.0.0.1:{postgres.port}/sagaline"


async def test_broker_delivers_a_produced_message_to_a_consumer(kafka_bootstrap: str) -> None:
    topic = f"test-{uuid.uuid4().hex}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"stream-1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"group-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000, max_records=1)
    finally:
        await consumer.stop()

    records = [record for batch in batches.values() for record in batch]
    assert [(record.key, record.value) for record in records] == [(b"stream-1", b"hello")]


async def test_a_broker_on_a_taken_port_refuses_to_start(
    kafka_broker: EmbeddedBroker, scratch_dir: Path
) -> None:
    second = EmbeddedBroker(scratch_dir, kafka_broker.port)

    with pytest.raises(PortInUse, match=f"port {kafka_broker.port} "):
        await second.start(ready_within=10)
    assert second.returncode is None


async def test_postgres_that_exits_while_starting_reports_the_tail_of_its_log(
    scratch_dir: Path,
) -> None:
    postgres = EmbeddedPostgres(scratch_dir, free_port())
    postgres.pgdata.mkdir(parents=True)
    # Looks initialised, so initdb is skipped, but holds no configuration file.
    (postgres.pgdata / "PG_VERSION").write_text("18\n")

    with pytest.raises(ComponentStartError) as raised:
        await postgres.start(ready_within=20)

    message = str(raised.value)
    assert message.startswith("postgres exited with status")
    assert "postgresql.conf" in message  # the server's own complaint, from its log
    assert postgres.returncode is None


async def test_temporal_dev_server_has_the_search_attributes_registered(
    temporal_address: str,
) -> None:
    client = await Client.connect(temporal_address)

    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )

    expected = {key.name for key in search_attributes.ALL}
    assert expected <= set(response.custom_attributes)
