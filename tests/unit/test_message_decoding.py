"""How a consumer reads the event out of a Kafka message's headers and body."""

from __future__ import annotations

import codecs
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord

from adapters.consumer import UndecodableMessage, decode
from adapters.kafka import cloudevent_headers, message_value
from domain.event_store import RecordedEvent

EVENT = RecordedEvent(
    position=7,
    stream_id="user-1",
    version=2,
    event_id=uuid.uuid4(),
    type="UserLoginFailed",
    schema_version=1,
    data={"user_id": "user-1", "reason": "wrong password"},
    metadata={"actor": "a"},
    recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
)


def message(value: bytes) -> ConsumerRecord[bytes, bytes]:
    headers = cloudevent_headers(EVENT, "test")
    return ConsumerRecord("events", 0, 3, 0, 0, b"user-1", value, None, 6, len(value), headers)


def test_a_body_with_a_utf8_byte_order_mark_decodes_as_without_it() -> None:
    plain = decode(message(message_value(EVENT)))
    marked = decode(message(codecs.BOM_UTF8 + message_value(EVENT)))
    assert marked == plain
    assert (marked.data, marked.metadata) == (EVENT.data, EVENT.metadata)


def test_a_body_that_is_not_utf8_is_undecodable() -> None:
    with pytest.raises(UndecodableMessage):
        decode(message(message_value(EVENT).replace(b"wrong", b"wr\xffng")))
