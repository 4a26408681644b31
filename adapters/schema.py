"""Tables of the event store, its unique keys, the write side's credentials and the followers'
checkpoints."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("position", BigInteger, Identity(always=True), primary_key=True),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("stream_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", Text, nullable=False),
    Column("schema_version", SmallInteger, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("stream_id", "version", name="events_stream_version_key"),
)

streams = Table(
    "streams",
    metadata,
    Column("stream_id", Text, primary_key=True),
    Column("version", Integer, nullable=False),
)

unique_keys = Table(
    "unique_keys",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("value", Text, primary_key=True),
    Column("stream_id", Text, nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("name", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("stream_id", Text, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("aggregate_type", Text, nullable=False),
    Column("schema_version", SmallInteger, nullable=False),
    Column("state", JSONB, nullable=False),
)

projection_failures = Table(
    "projection_failures",
    metadata,
    Column("name", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

processed_messages = Table(
    "processed_messages",
    metadata,
    Column("handler", Text, primary_key=True),
    Column("message_id", Text, primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

pattern_occurrences = Table(
    "pattern_occurrences",
    metadata,
    Column("pattern", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("event_id", Text, primary_key=True),
    Column("event_time", DateTime(timezone=True), nullable=False),
)

# Write side only: no projection, relay or API answer reads a hash from anywhere but here.
user_credentials = Table(
    "user_credentials",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# A registration's hash from the moment the API hashed it until its command appends (or gives
# up): commands carry the command id, never the hash.
held_credentials = Table(
    "held_credentials",
    metadata,
    Column("command_id", Text, primary_key=True),
    Column("user_id", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("held_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

relay_acks = Table(
    "relay_acks",
    metadata,
    Column("name", Text, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("base_offset", BigInteger, primary_key=True),
    Column("end_offset", BigInteger, nullable=False),
    Column("last_batch_offset", BigInteger, nullable=False),
    Column("first_position", BigInteger, nullable=False),
)

relay_brokers = Table(
    "relay_brokers",
    metadata,
    Column("name", Text, primary_key=True),
    Column("cluster_id", Text, nullable=True),
    Column("recoveries", BigInteger, nullable=False, server_default="0"),
    Column("last_recovery_at", DateTime(timezone=True), nullable=True),
    Column("last_recovery_from", BigInteger, nullable=True),
)
