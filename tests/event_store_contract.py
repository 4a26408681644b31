"""What every event store and snapshot store must do, whatever keeps the data.

`EventStoreContract` is subclassed once per implementation: tests/unit for the in-memory
store, tests/integration for Postgres. A subclass provides the `store` and `snapshots`
fixtures. Ids are unique per test, so the Postgres run can share its database.
"""

from __future__ import annotations

import uuid

import pytest

from domain.event_store import (
    ANY,
    NO_STREAM,
    EventIdConflict,
    EventStore,
    NewEvent,
    Snapshot,
    SnapshotStore,
    StreamAppend,
    UniqueKey,
    UniqueKeyTaken,
    WrongExpectedVersion,
)


def new_stream() -> str:
    return f"contract-{uuid.uuid4()}"


def new_key() -> UniqueKey:
    return UniqueKey("contract_email", f"{uuid.uuid4()}@example.com")


def event(n: int = 0, type_: str = "Happened") -> NewEvent:
    return NewEvent(uuid.uuid4(), type_, {"n": n}, {"actor": "contract"})


async def is_free(store: EventStore, key: UniqueKey) -> bool:
    """Whether a new stream may claim `key`; a probe claims and releases it, leaving it free."""
    probe = new_stream()
    try:
        await store.append(StreamAppend(probe, [event()], NO_STREAM, claims=[key]))
    except UniqueKeyTaken:
        return False
    await store.append(StreamAppend(probe, [event()], 1, releases=[key]))
    return True


async def owns(store: EventStore, stream: str, key: UniqueKey) -> bool:
    """Whether `stream` holds `key`: a new stream may not claim it and `stream` may again."""
    if await is_free(store, key):
        return False
    try:
        await store.append(StreamAppend(stream, [event()], ANY, claims=[key]))
    except UniqueKeyTaken:
        return False
    return True


class EventStoreContract:
    """The event store port's behaviour, run against each implementation."""

    # Expected versions

    async def test_no_stream_creates_a_stream_and_then_refuses(self, store: EventStore) -> None:
        stream = new_stream()
        assert (await store.append(StreamAppend(stream, [event()], NO_STREAM))).versions == {
            stream: 1
        }

        with pytest.raises(WrongExpectedVersion) as raised:
            await store.append(StreamAppend(stream, [event()], NO_STREAM))

        assert (raised.value.stream_id, raised.value.expected, raised.value.actual) == (
            stream,
            NO_STREAM,
            1,
        )
        assert [e.version for e in await store.read_stream(stream)] == [1]

    async def test_an_exact_version_must_be_the_streams_version(self, store: EventStore) -> None:
        stream = new_stream()
        with pytest.raises(WrongExpectedVersion) as missing:
            await store.append(StreamAppend(stream, [event()], 1))
        assert missing.value.actual == 0
        await store.append(StreamAppend(stream, [event(), event()], NO_STREAM))

        with pytest.raises(WrongExpectedVersion) as behind:
            await store.append(StreamAppend(stream, [event()], 1))
        result = await store.append(StreamAppend(stream, [event()], 2))

        assert (behind.value.expected, behind.value.actual) == (1, 2)
        assert result.versions == {stream: 3}
        assert [e.version for e in await store.read_stream(stream)] == [1, 2, 3]

    async def test_any_appends_to_a_missing_or_existing_stream(self, store: EventStore) -> None:
        stream = new_stream()
        first = await store.append(StreamAppend(stream, [event(1)], ANY))
        second = await store.append(StreamAppend(stream, [event(2), event(3)], ANY))

        assert (first.versions, second.versions) == ({stream: 1}, {stream: 3})
        assert second.position > first.position
        assert [e.data["n"] for e in await store.read_stream(stream)] == [1, 2, 3]

    # Several streams at once

    async def test_a_wrong_version_fails_a_several_stream_append_whole_and_names_the_stream(
        self, store: EventStore
    ) -> None:
        # Streams are taken in id order: one before the stream that moved, one after.
        base = new_stream()
        first, moved, third = f"{base}-a", f"{base}-b", f"{base}-c"
        await store.append(StreamAppend(moved, [event(), event()], NO_STREAM))

        with pytest.raises(WrongExpectedVersion) as raised:
            await store.append(
                StreamAppend(first, [event()], NO_STREAM),
                StreamAppend(moved, [event()], 1),
                StreamAppend(third, [event()], NO_STREAM),
            )

        assert (raised.value.stream_id, raised.value.expected, raised.value.actual) == (moved, 1, 2)
        assert await store.read_stream(first) == await store.read_stream(third) == []
        assert len(await store.read_stream(moved)) == 2

    async def test_a_several_stream_append_reports_every_streams_version(
        self, store: EventStore
    ) -> None:
        first, second = new_stream(), new_stream()
        await store.append(StreamAppend(second, [event()], NO_STREAM))

        result = await store.append(
            StreamAppend(first, [event(), event()], NO_STREAM), StreamAppend(second, [event()], 1)
        )

        assert result.versions == {first: 2, second: 2}
        stored = [*await store.read_stream(first), *await store.read_stream(second)]
        assert result.position == max(e.position for e in stored)

    async def test_an_append_needs_events_and_names_each_stream_once(
        self, store: EventStore
    ) -> None:
        stream = new_stream()
        with pytest.raises(ValueError):
            await store.append()
        with pytest.raises(ValueError):
            await store.append(StreamAppend(stream, [], NO_STREAM))
        with pytest.raises(ValueError):
            await store.append(
                StreamAppend(stream, [event()], NO_STREAM), StreamAppend(stream, [event()], 1)
            )
        assert await store.read_stream(stream) == []

    # Idempotency by event id

    async def test_reappending_the_same_events_returns_the_first_result(
        self, store: EventStore
    ) -> None:
        stream = new_stream()
        events = [event(1), event(2)]
        first = await store.append(StreamAppend(stream, events, NO_STREAM))

        again = await store.append(StreamAppend(stream, events, NO_STREAM))

        assert again == first
        assert [e.event_id for e in await store.read_stream(stream)] == [e.event_id for e in events]

    async def test_a_retry_after_the_stream_moved_on_reports_where_the_first_append_landed(
        self, store: EventStore
    ) -> None:
        stream = new_stream()
        await store.append(StreamAppend(stream, [event()], NO_STREAM))
        retried = event(2)
        first = await store.append(StreamAppend(stream, [retried], 1))
        await store.append(StreamAppend(stream, [event(3)], 2))

        again = await store.append(StreamAppend(stream, [retried], 1))

        assert again == first and again.versions == {stream: 2}
        assert len(await store.read_stream(stream)) == 3

    async def test_reappending_a_several_stream_append_returns_the_first_result(
        self, store: EventStore
    ) -> None:
        first, second = new_stream(), new_stream()
        appends = (
            StreamAppend(first, [event(1)], NO_STREAM),
            StreamAppend(second, [event(2), event(3)], NO_STREAM),
        )
        result = await store.append(*appends)

        assert await store.append(*appends) == result
        assert len(await store.read_stream(second)) == 2

    async def test_a_retry_with_other_metadata_is_the_same_event(self, store: EventStore) -> None:
        stream = new_stream()
        original = event(1)
        first = await store.append(StreamAppend(stream, [original], NO_STREAM))
        retry = NewEvent(original.event_id, original.type, {"n": 1}, {"actor": "retry"})

        assert await store.append(StreamAppend(stream, [retry], NO_STREAM)) == first
        (stored,) = await store.read_stream(stream)
        assert stored.metadata == {"actor": "contract"}

    async def test_reappending_an_event_id_with_other_data_is_a_conflict(
        self, store: EventStore
    ) -> None:
        stream = new_stream()
        original = event(1)
        await store.append(StreamAppend(stream, [original], NO_STREAM))
        forged = NewEvent(original.event_id, original.type, {"n": 2})

        with pytest.raises(EventIdConflict) as raised:
            await store.append(StreamAppend(stream, [forged], ANY))

        assert raised.value.event_id == original.event_id
        assert [e.data for e in await store.read_stream(stream)] == [{"n": 1}]

    async def test_reappending_an_event_id_to_another_stream_is_a_conflict(
        self, store: EventStore
    ) -> None:
        stream, other = new_stream(), new_stream()
        original = event(1)
        await store.append(StreamAppend(stream, [original], NO_STREAM))

        with pytest.raises(EventIdConflict):
            await store.append(StreamAppend(other, [original], NO_STREAM))

        assert await store.read_stream(other) == []

    async def test_reappending_an_event_id_with_another_type_or_schema_is_a_conflict(
        self, store: EventStore
    ) -> None:
        stream = new_stream()
        original = event(1)
        await store.append(StreamAppend(stream, [original], NO_STREAM))
        other_type = NewEvent(original.event_id, "Other", original.data)
        other_schema = NewEvent(original.event_id, original.type, original.data, schema_version=2)

        for forged in (other_type, other_schema):
            with pytest.raises(EventIdConflict):
                await store.append(StreamAppend(stream, [forged], ANY))

        assert len(await store.read_stream(stream)) == 1

    # Unique keys

    async def test_a_claimed_key_is_owned_by_its_stream(self, store: EventStore) -> None:
        key, stream = new_key(), new_stream()
        assert await is_free(store, key)

        await store.append(StreamAppend(stream, [event()], NO_STREAM, claims=[key]))

        assert await owns(store, stream, key)

    async def test_a_key_taken_by_another_stream_refuses_the_append(
        self, store: EventStore
    ) -> None:
        key, free, owner, other = new_key(), new_key(), new_stream(), new_stream()
        await store.append(StreamAppend(owner, [event()], NO_STREAM, claims=[key]))

        with pytest.raises(UniqueKeyTaken) as raised:
            await store.append(StreamAppend(other, [event()], NO_STREAM, claims=[free, key]))

        assert raised.value.key == key
        assert await store.read_stream(other) == []
        assert await owns(store, owner, key)
        assert await is_free(store, free)

    async def test_a_stream_may_claim_a_key_it_already_owns(self, store: EventStore) -> None:
        key, stream = new_key(), new_stream()
        await store.append(StreamAppend(stream, [event()], NO_STREAM, claims=[key]))

        result = await store.append(StreamAppend(stream, [event()], 1, claims=[key]))

        assert result.versions == {stream: 2}
        assert await owns(store, stream, key)

    async def test_a_taken_key_fails_a_several_stream_append_whole(self, store: EventStore) -> None:
        key, free, owner = new_key(), new_key(), new_stream()
        # Streams are taken in id order: the one claiming a free key comes first.
        first, second = f"{owner}-a", f"{owner}-b"
        await store.append(StreamAppend(owner, [event()], NO_STREAM, claims=[key]))

        with pytest.raises(UniqueKeyTaken):
            await store.append(
                StreamAppend(first, [event()], NO_STREAM, claims=[free]),
                StreamAppend(second, [event()], NO_STREAM, claims=[key]),
            )

        assert await store.read_stream(first) == await store.read_stream(second) == []
        assert await is_free(store, free)
        assert await owns(store, owner, key)

    async def test_a_released_key_can_be_claimed_by_another_stream(self, store: EventStore) -> None:
        key, first, second = new_key(), new_stream(), new_stream()
        await store.append(StreamAppend(first, [event()], NO_STREAM, claims=[key]))

        await store.append(StreamAppend(first, [event()], 1, releases=[key]))
        assert await is_free(store, key)
        await store.append(StreamAppend(second, [event()], NO_STREAM, claims=[key]))

        assert await owns(store, second, key)

    async def test_releasing_a_key_another_stream_owns_leaves_it_owned(
        self, store: EventStore
    ) -> None:
        key, owner, other = new_key(), new_stream(), new_stream()
        await store.append(StreamAppend(owner, [event()], NO_STREAM, claims=[key]))

        await store.append(StreamAppend(other, [event()], NO_STREAM, releases=[key]))

        assert await owns(store, owner, key)

    async def test_a_refused_append_claims_nothing(self, store: EventStore) -> None:
        key, stream = new_key(), new_stream()
        await store.append(StreamAppend(stream, [event()], NO_STREAM))

        with pytest.raises(WrongExpectedVersion):
            await store.append(StreamAppend(stream, [event()], NO_STREAM, claims=[key]))

        assert await is_free(store, key)

    # Reads

    async def test_a_stream_reads_forwards_and_backwards_from_a_version(
        self, store: EventStore
    ) -> None:
        stream = new_stream()
        await store.append(StreamAppend(stream, [event(i) for i in range(1, 6)], NO_STREAM))

        forwards = await store.read_stream(stream, from_version=2, limit=2)
        backwards = await store.read_stream(stream, from_version=4, limit=3, backwards=True)

        assert [e.data["n"] for e in forwards] == [2, 3]
        assert [e.version for e in backwards] == [4, 3, 2]
        assert forwards[0].metadata == {"actor": "contract"}
        assert await store.read_stream(new_stream()) == []

    async def test_several_streams_read_each_from_its_own_version(self, store: EventStore) -> None:
        first, second, missing = new_stream(), new_stream(), new_stream()
        await store.append(StreamAppend(first, [event(1), event(2), event(3)], NO_STREAM))
        await store.append(StreamAppend(second, [event(4)], NO_STREAM))

        found = await store.read_streams({first: 3, second: 1, missing: 1})

        assert {s: [e.data["n"] for e in found[s]] for s in found} == {
            first: [3],
            second: [4],
            missing: [],
        }

    async def test_read_all_gives_events_in_the_order_they_were_appended(
        self, store: EventStore
    ) -> None:
        kind = f"Ordered-{uuid.uuid4()}"
        first, second = new_stream(), new_stream()
        start = await store.head_position()
        await store.append(StreamAppend(first, [event(1, kind), event(2, kind)], NO_STREAM))
        await store.append(StreamAppend(second, [event(3, kind)], NO_STREAM))
        last = await store.append(
            StreamAppend(first, [event(4, kind)], 2), StreamAppend(second, [event(5, kind)], 1)
        )

        seen, position = [], start
        while position < last.position:
            page = await store.read_all(position, limit=1, types=[kind], wait_seconds=5.0)
            assert len(page.events) <= 1 and page.next_position > position
            seen.extend(page.events)
            position = page.next_position

        assert [(e.stream_id, e.data["n"]) for e in seen][:3] == [
            (first, 1),
            (first, 2),
            (second, 3),
        ]
        assert {(e.stream_id, e.data["n"]) for e in seen[3:]} == {(first, 4), (second, 5)}
        assert [e.position for e in seen] == sorted(e.position for e in seen)
        assert seen[-1].position == last.position
        assert await store.head_position() >= last.position

    async def test_read_all_gives_each_event_of_a_page_its_own_payload(
        self, store: EventStore
    ) -> None:
        wanted, other = f"Wanted-{uuid.uuid4()}", f"Other-{uuid.uuid4()}"
        stream = new_stream()
        start = await store.head_position()
        payloads = [
            ({"n": 1, "text": 'a "quoted", [bracketed] ü'}, {"actor": "first"}),
            ({"n": 2, "nested": {"list": [1, {"x": None}]}}, {}),
            ({"n": 3}, {"actor": "third", "traceparent": "00-ab-cd-01"}),
        ]
        kinds = [wanted, other, wanted]
        new = [
            NewEvent(uuid.uuid4(), kind, data, metadata)
            for kind, (data, metadata) in zip(kinds, payloads, strict=True)
        ]
        result = await store.append(StreamAppend(stream, new, NO_STREAM))

        every = await store.read_all(start, limit=100, wait_seconds=5.0)
        some = await store.read_all(start, limit=100, types=[wanted], wait_seconds=5.0)

        assert [(e.type, e.data, e.metadata) for e in every.events if e.stream_id == stream] == [
            (kind, data, metadata) for kind, (data, metadata) in zip(kinds, payloads, strict=True)
        ]
        assert [(e.data, e.metadata) for e in some.events if e.stream_id == stream] == [
            payloads[0],
            payloads[2],
        ]
        assert {e.event_id for e in every.events if e.stream_id == stream} == {
            n.event_id for n in new
        }
        assert some.next_position >= result.position

    async def test_read_all_skips_other_types_but_moves_past_them(self, store: EventStore) -> None:
        wanted, other = f"Wanted-{uuid.uuid4()}", f"Other-{uuid.uuid4()}"
        stream = new_stream()
        start = await store.head_position()
        result = await store.append(
            StreamAppend(stream, [event(1, wanted), event(2, other)], NO_STREAM)
        )

        page = await store.read_all(start, limit=100, types=[wanted], wait_seconds=5.0)

        assert [e.data["n"] for e in page.events if e.stream_id == stream] == [1]
        assert all(e.type == wanted for e in page.events)
        assert page.next_position >= result.position

    async def test_read_all_after_the_head_is_empty(self, store: EventStore) -> None:
        await store.append(StreamAppend(new_stream(), [event()], NO_STREAM))
        head = await store.head_position()
        kind = f"Never-{uuid.uuid4()}"

        page = await store.read_all(head, limit=10, types=[kind], wait_seconds=0.0)

        assert page.events == []
        assert page.next_position >= head


class SnapshotStoreContract:
    """The snapshot store port's behaviour, run against each implementation."""

    async def test_the_newest_snapshot_of_each_stream_is_kept(
        self, snapshots: SnapshotStore
    ) -> None:
        stream, other, missing = new_stream(), new_stream(), new_stream()
        await snapshots.save(Snapshot(stream, 10, "Thing", 1, {"n": 10}))
        await snapshots.save(Snapshot(stream, 20, "Thing", 1, {"n": 20}))
        await snapshots.save(Snapshot(stream, 15, "Thing", 1, {"n": 15}))
        await snapshots.save(Snapshot(other, 3, "Other", 2, {"items": [1, 2]}))

        found = await snapshots.load_many([stream, other, missing])

        assert found == {
            stream: Snapshot(stream, 20, "Thing", 1, {"n": 20}),
            other: Snapshot(other, 3, "Other", 2, {"items": [1, 2]}),
        }
