"""The Postgres event store: expected versions, idempotency, unique keys, reads."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from adapters.event_store import PostgresEventStore
from domain.event_store import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    EventIdConflict,
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


async def test_append_then_read_stream_forwards_and_backwards(store: PostgresEventStore) -> None:
    stream = new_stream()
    result = await store.append(StreamAppend(stream, [event(i) for i in range(5)], NO_STREAM))
    assert result.versions == {stream: 5}

    forwards = await store.read_stream(stream, from_version=2, limit=2)
    backwards = await store.read_stream(stream, from_version=4, limit=3, backwards=True)

    assert [e.data["n"] for e in forwards] == [1, 2]
    assert [e.version for e in backwards] == [4, 3, 2]
    assert forwards[-1].position < result.position
    assert forwards[0].metadata == {"actor": "test"}


async def test_exact_decimals_round_trip(store: PostgresEventStore) -> None:
    stream = new_stream()
    amount = "12345678901234567890.0000000001"
    await store.append(StreamAppend(stream, [event(amount=amount)], NO_STREAM))
    (stored,) = await store.read_stream(stream)
    assert Decimal(stored.data["amount"]) == Decimal(amount)


async def test_expected_version_is_checked(store: PostgresEventStore) -> None:
    stream = new_stream()
    with pytest.raises(WrongExpectedVersion):
        await store.append(StreamAppend(stream, [event()], STREAM_EXISTS))
    with pytest.raises(WrongExpectedVersion):
        await store.append(StreamAppend(stream, [event()], 3))
    await store.append(StreamAppend(stream, [event()], NO_STREAM))
    with pytest.raises(WrongExpectedVersion) as raised:
        await store.append(StreamAppend(stream, [event()], NO_STREAM))
    assert raised.value.actual == 1
    await store.append(StreamAppend(stream, [event()], 1))
    await store.append(StreamAppend(stream, [event()], STREAM_EXISTS))
    result = await store.append(StreamAppend(stream, [event()], ANY))
    assert result.versions[stream] == 4
    assert [e.version for e in await store.read_stream(stream)] == [1, 2, 3, 4]


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


async def test_reappending_the_same_events_is_idempotent(store: PostgresEventStore) -> None:
    stream = new_stream()
    events = [event(1), event(2)]
    first = await store.append(StreamAppend(stream, events, NO_STREAM))
    again = await store.append(StreamAppend(stream, events, NO_STREAM))
    assert again == first
    assert len(await store.read_stream(stream)) == 2


async def test_reappending_an_event_id_with_other_content_is_an_error(
    store: PostgresEventStore,
) -> None:
    stream = new_stream()
    original = event(1)
    await store.append(StreamAppend(stream, [original], NO_STREAM))
    forged = NewEvent(original.event_id, original.type, {"n": 2})
    with pytest.raises(EventIdConflict):
        await store.append(StreamAppend(stream, [forged], ANY))
    assert [e.data for e in await store.read_stream(stream)] == [{"n": 1}]


async def test_several_streams_append_atomically(store: PostgresEventStore) -> None:
    first, second = new_stream(), new_stream()
    await store.append(StreamAppend(second, [event()], NO_STREAM))
    with pytest.raises(WrongExpectedVersion):
        await store.append(
            StreamAppend(first, [event()], NO_STREAM), StreamAppend(second, [event()], NO_STREAM)
        )
    assert await store.read_stream(first) == []

    result = await store.append(
        StreamAppend(first, [event()], NO_STREAM), StreamAppend(second, [event()], 1)
    )
    assert result.versions == {first: 1, second: 2}


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


async def test_a_taken_unique_key_fails_a_several_stream_append_whole(
    store: PostgresEventStore,
) -> None:
    key = UniqueKey("test_email", f"{uuid.uuid4()}@example.com")
    owner, first, second = new_stream(), new_stream(), new_stream()
    await store.append(StreamAppend(owner, [event()], NO_STREAM, claims=[key]))

    with pytest.raises(UniqueKeyTaken):
        await store.append(
            StreamAppend(first, [event()], NO_STREAM),
            StreamAppend(second, [event()], NO_STREAM, claims=[key]),
        )
    assert await store.read_stream(first) == []
    assert await store.unique_key_owner(key) == owner


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
    winner = streams[outcomes.index(True)]
    assert await store.unique_key_owner(key) == winner
    for loser in (s for s, won in zip(streams, outcomes, strict=True) if not won):
        assert await store.read_stream(loser) == []


async def test_a_released_unique_key_can_be_claimed_again(store: PostgresEventStore) -> None:
    key = UniqueKey("test_email", f"{uuid.uuid4()}@example.com")
    first, second = new_stream(), new_stream()
    await store.append(StreamAppend(first, [event()], NO_STREAM, claims=[key]))
    await store.append(StreamAppend(first, [event()], 1, releases=[key]))
    await store.append(StreamAppend(second, [event()], NO_STREAM, claims=[key]))
    assert await store.unique_key_owner(key) == second
