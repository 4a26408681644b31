"""The Postgres event store: expected versions, idempotency, unique keys, reads."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from adapters.event_store import PostgresEventStore
from domain.event_store import (
    NO_STREAM,
    NewEvent,
    StreamAppend,
    UniqueKey,
    UniqueKeyTaken,
    WrongExpectedVersion,
)


def new_stream() -> str:
    return f"test-{uuid.uuid4()}"


def event(n: int = 0, **data: object) -> NewEvent:
    return NewEvent(uuid.uuid4(), "Happened", {"n": n, **data}, {"actor": "test"})


async def test_exact_decimals_round_trip(store: PostgresEventStore) -> None:
    stream = new_stream()
    amount = "12345678901234567890.0000000001"
    await store.append(StreamAppend(stream, [event(amount=amount)], NO_STREAM))
    (stored,) = await store.read_stream(stream)
    assert Decimal(stored.data["amount"]) == Decimal(amount)


async def test_eight_writers_racing_on_one_stream_get_one_winner_per_version(
    store: PostgresEventStore,
) -> None:
    stream = new_stream()
    await store.append(StreamAppend(stream, [event()], NO_STREAM))
    appended: list[uuid.UUID] = []

    async def writer() -> None:
        for _ in range(20):
            while True:
                version = len(await store.read_stream(stream))
                candidate = event(version)
                try:
                    await store.append(StreamAppend(stream, [candidate], version))
                except WrongExpectedVersion:
                    continue
                appended.append(candidate.event_id)
                break

    await asyncio.gather(*(writer() for _ in range(8)))

    stored = await store.read_stream(stream)
    assert [e.version for e in stored] == list(range(1, 162))
    assert sorted(e.event_id for e in stored[1:]) == sorted(appended)


async def test_a_wrong_version_in_a_several_stream_append_names_the_stream_that_moved(
    store: PostgresEventStore,
) -> None:
    first, second, third = new_stream(), new_stream(), new_stream()
    await store.append(StreamAppend(second, [event(), event()], NO_STREAM))

    with pytest.raises(WrongExpectedVersion) as moved:
        await store.append(
            StreamAppend(first, [event()], NO_STREAM),
            StreamAppend(second, [event()], 1),
            StreamAppend(third, [event()], NO_STREAM),
        )

    assert (moved.value.stream_id, moved.value.expected, moved.value.actual) == (second, 1, 2)
    assert await store.read_stream(first) == await store.read_stream(third) == []


async def test_an_append_names_each_stream_once(store: PostgresEventStore) -> None:
    stream = new_stream()
    with pytest.raises(ValueError):
        await store.append(
            StreamAppend(stream, [event()], NO_STREAM), StreamAppend(stream, [event()], 1)
        )
    assert await store.read_stream(stream) == []


async def test_concurrent_unique_key_claims_have_one_winner(store: PostgresEventStore) -> None:
    key = UniqueKey("test_email", f"{uuid.uuid4()}@example.com")
    streams = [new_stream() for _ in range(8)]

    async def claim(stream: str) -> bool:
        try:
            await store.append(StreamAppend(stream, [event()], NO_STREAM, claims=[key]))
        except UniqueKeyTaken:
            return False
        return True

    outcomes = await asyncio.gather(*(claim(s) for s in streams))

    assert outcomes.count(True) == 1
    winner, loser = streams[outcomes.index(True)], streams[outcomes.index(False)]
    # The key stays with the winner: it may claim it again, a loser still may not.
    await store.append(StreamAppend(winner, [event()], 1, claims=[key]))
    with pytest.raises(UniqueKeyTaken):
        await store.append(StreamAppend(loser, [event()], NO_STREAM, claims=[key]))
    for refused in (s for s, won in zip(streams, outcomes, strict=True) if not won):
        assert await store.read_stream(refused) == []


async def test_a_streams_first_event_type_is_read_alone(store: PostgresEventStore) -> None:
    stream = new_stream()
    assert await store.first_event_type(stream) is None
    first = NewEvent(uuid.uuid4(), "Opened", {}, {"actor": "test"})
    await store.append(StreamAppend(stream, [first, event(1)], NO_STREAM))
    await store.append(StreamAppend(stream, [event(2)], 2))

    assert await store.first_event_type(stream) == "Opened"
