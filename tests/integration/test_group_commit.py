"""Group commit: appends queued together go in one statement, each with its own outcome.

Every test holds the store's groups (`GroupCommit.paused`) until all its appends are queued,
then checks from the counters that they really went as one group.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.event_store import PostgresEventStore
from domain.event_store import (
    ANY,
    NO_STREAM,
    AppendResult,
    EventIdConflict,
    NewEvent,
    StreamAppend,
    UniqueKey,
    UniqueKeyTaken,
    WrongExpectedVersion,
)

QUEUE_STEPS = 100


@pytest.fixture(scope="module")
async def store(engine: AsyncEngine) -> AsyncIterator[PostgresEventStore]:
    """A store of these tests' own: its group counters and queue count only their appends,
    where the session's store is shared with whatever else appends through it."""
    own = PostgresEventStore(engine)
    yield own
    await own.close()


def new_event(data: dict[str, str] | None = None) -> NewEvent:
    return NewEvent(uuid.uuid4(), "Happened", data or {"n": "1"})


def stream() -> str:
    return f"group-{uuid.uuid4()}"


async def in_one_group(
    store: PostgresEventStore, appends: Sequence[Sequence[StreamAppend]], committed: bool = True
) -> list[AppendResult | BaseException]:
    """Each caller's outcome, all queued before any was sent.

    With `committed`, also asserts that they went in one statement that committed.
    """
    groups = store.appends.groups_flushed
    flushed = store.appends.appends_flushed
    async with store.appends.paused():
        calls = [asyncio.ensure_future(store.append(*streams)) for streams in appends]
        # Each call queues itself on its first step, before it awaits anything.
        for _ in range(QUEUE_STEPS):
            if store.appends.waiting == len(appends):
                break
            await asyncio.sleep(0)
        assert store.appends.waiting == len(appends)
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    if not committed:
        return outcomes
    assert store.appends.groups_flushed == groups + 1
    assert store.appends.appends_flushed == flushed + len(appends)
    return outcomes


async def test_a_conflict_in_a_group_fails_only_its_own_caller(store: PostgresEventStore) -> None:
    moved, fresh, other = stream(), stream(), stream()
    await store.append(StreamAppend(moved, [new_event()], NO_STREAM))

    stale, created, added = await in_one_group(
        store,
        [
            [StreamAppend(moved, [new_event()], NO_STREAM)],
            [StreamAppend(fresh, [new_event()], NO_STREAM)],
            [StreamAppend(other, [new_event()], ANY), StreamAppend(moved, [new_event()], 1)],
        ],
    )

    assert isinstance(stale, WrongExpectedVersion)
    assert (stale.stream_id, stale.expected, stale.actual) == (moved, NO_STREAM, 1)
    assert isinstance(created, AppendResult) and created.versions == {fresh: 1}
    assert isinstance(added, AppendResult) and added.versions == {other: 1, moved: 2}
    assert [e.version for e in await store.read_stream(moved)] == [1, 2]


async def test_a_second_append_to_a_stream_in_a_group_sees_the_first(
    store: PostgresEventStore,
) -> None:
    stream_id = stream()

    first, second = await in_one_group(
        store,
        [
            [StreamAppend(stream_id, [new_event(), new_event()], NO_STREAM)],
            [StreamAppend(stream_id, [new_event()], 2)],
        ],
    )

    assert isinstance(first, AppendResult) and first.versions == {stream_id: 2}
    assert isinstance(second, AppendResult) and second.versions == {stream_id: 3}
    assert second.position > first.position


@pytest.mark.parametrize("expected", [NO_STREAM, ANY])
async def test_an_idempotent_re_append_inside_a_group_returns_the_first_result(
    store: PostgresEventStore, expected: int
) -> None:
    append = StreamAppend(stream(), [new_event(), new_event()], expected)

    first, again = await in_one_group(store, [[append], [append]])

    assert isinstance(first, AppendResult)
    assert again == first
    assert len(await store.read_stream(append.stream_id)) == 2


async def test_two_claims_of_one_key_inside_a_group_have_one_winner(
    store: PostgresEventStore,
) -> None:
    key = UniqueKey("email", f"{uuid.uuid4()}@example.com")
    winner, loser = stream(), stream()

    won, lost = await in_one_group(
        store,
        [
            [StreamAppend(winner, [new_event()], NO_STREAM, claims=[key])],
            [StreamAppend(loser, [new_event()], NO_STREAM, claims=[key])],
        ],
    )

    assert isinstance(won, AppendResult)
    assert isinstance(lost, UniqueKeyTaken) and lost.key == key
    assert await store.read_stream(loser) == []
    released = StreamAppend(winner, [new_event()], 1, releases=[key])
    claimed = StreamAppend(loser, [new_event()], NO_STREAM, claims=[key])
    assert isinstance(await store.append(released), AppendResult)
    assert (await store.append(claimed)).versions == {loser: 1}


async def test_an_append_the_database_rejects_fails_only_its_own_caller(
    store: PostgresEventStore,
) -> None:
    good, bad = stream(), stream()

    # jsonb cannot hold a NUL character: the group statement fails, and each member is retried
    # alone, so only the append that carries one fails.
    ok, rejected = await in_one_group(
        store,
        [
            [StreamAppend(good, [new_event()], NO_STREAM)],
            [StreamAppend(bad, [new_event({"n": "\x00"})], NO_STREAM)],
        ],
        committed=False,
    )

    assert isinstance(ok, AppendResult) and ok.versions == {good: 1}
    assert isinstance(rejected, Exception) and not isinstance(rejected, WrongExpectedVersion)
    assert await store.read_stream(bad) == []


async def test_an_append_alone_is_sent_at_once(store: PostgresEventStore) -> None:
    groups = store.appends.groups_flushed
    stream_id = stream()

    result = await store.append(StreamAppend(stream_id, [new_event()], NO_STREAM))

    assert result.versions == {stream_id: 1}
    assert store.appends.groups_flushed == groups + 1


# Groups of plain appends (one stream each, all different, exact or NO_STREAM versions, no
# unique keys) go as one set-based statement; whatever it cannot settle goes the careful way.


async def test_plain_appends_go_as_one_set_based_statement_in_input_order(
    store: PostgresEventStore,
) -> None:
    existing, fresh = stream(), stream()
    await store.append(StreamAppend(existing, [new_event()], NO_STREAM))
    plain = store.appends.plain_groups_flushed
    two = [new_event({"n": "a"}), new_event({"n": "b"})]

    first, second = await in_one_group(
        store,
        [[StreamAppend(existing, two, 1)], [StreamAppend(fresh, [new_event()], NO_STREAM)]],
    )

    assert store.appends.plain_groups_flushed == plain + 1
    assert isinstance(first, AppendResult) and first.versions == {existing: 3}
    assert isinstance(second, AppendResult) and second.versions == {fresh: 1}
    assert second.position > first.position
    stored = await store.read_stream(existing)
    assert [(e.version, e.data) for e in stored] == [
        (1, {"n": "1"}),
        (2, {"n": "a"}),
        (3, {"n": "b"}),
    ]
    assert stored[2].position == first.position
    assert stored[1].position == first.position - 1


async def test_a_stale_version_in_a_plain_group_fails_only_its_own_caller(
    store: PostgresEventStore,
) -> None:
    moved, missing, fresh, created = stream(), stream(), stream(), stream()
    await store.append(StreamAppend(moved, [new_event(), new_event()], NO_STREAM))
    await store.append(StreamAppend(created, [new_event()], NO_STREAM))
    plain = store.appends.plain_groups_flushed

    stale, absent, ok, again = await in_one_group(
        store,
        [
            [StreamAppend(moved, [new_event()], 1)],
            [StreamAppend(missing, [new_event()], 3)],
            [StreamAppend(fresh, [new_event()], NO_STREAM)],
            [StreamAppend(created, [new_event()], NO_STREAM)],
        ],
        committed=False,
    )

    assert store.appends.plain_groups_flushed == plain + 1
    assert isinstance(stale, WrongExpectedVersion)
    assert (stale.stream_id, stale.expected, stale.actual) == (moved, 1, 2)
    assert isinstance(absent, WrongExpectedVersion)
    assert (absent.stream_id, absent.expected, absent.actual) == (missing, 3, 0)
    assert isinstance(again, WrongExpectedVersion)
    assert (again.stream_id, again.expected, again.actual) == (created, NO_STREAM, 1)
    assert isinstance(ok, AppendResult) and ok.versions == {fresh: 1}
    assert [e.version for e in await store.read_stream(moved)] == [1, 2]
    assert await store.read_stream(missing) == []
    assert len(await store.read_stream(created)) == 1


async def test_a_retried_append_in_a_plain_group_returns_its_first_result(
    store: PostgresEventStore,
) -> None:
    retried = StreamAppend(stream(), [new_event()], NO_STREAM)
    first = await store.append(retried)
    other = stream()

    again, ok = await in_one_group(
        store, [[retried], [StreamAppend(other, [new_event()], NO_STREAM)]], committed=False
    )

    assert again == first
    assert isinstance(ok, AppendResult) and ok.versions == {other: 1}
    assert len(await store.read_stream(retried.stream_id)) == 1


async def test_an_event_id_reused_in_a_plain_group_fails_only_its_own_caller(
    store: PostgresEventStore,
) -> None:
    taken = new_event()
    owner, thief, bystander = stream(), stream(), stream()
    await store.append(StreamAppend(owner, [taken], NO_STREAM))

    # The reused id fails the set-based statement as a whole; the group is then sent the
    # careful way, where only the append that reused it fails.
    stolen, ok = await in_one_group(
        store,
        [
            [StreamAppend(thief, [taken], NO_STREAM)],
            [StreamAppend(bystander, [new_event()], NO_STREAM)],
        ],
    )

    assert isinstance(stolen, EventIdConflict) and stolen.event_id == taken.event_id
    assert isinstance(ok, AppendResult) and ok.versions == {bystander: 1}
    assert await store.read_stream(thief) == []


async def test_a_plain_group_stores_each_events_data_and_metadata_as_given(
    store: PostgresEventStore,
) -> None:
    first, second = stream(), stream()
    data = {"name": "Zoë \"quoted\" \\ 'single' ✓", "nested": {"list": [1, 2.5, None, True]}}
    metadata = {"correlation": "c-1", "empty": {}, "big": 2**70, "floats": [0.1, 2.5e-7]}
    event = NewEvent(uuid.uuid4(), "Happened", data, metadata, schema_version=3)
    plain = store.appends.plain_groups_flushed

    one, two = await in_one_group(
        store,
        [[StreamAppend(first, [event], NO_STREAM)], [StreamAppend(second, [new_event()], 0)]],
    )

    assert store.appends.plain_groups_flushed == plain + 1
    assert isinstance(one, AppendResult) and isinstance(two, AppendResult)
    [stored] = await store.read_stream(first)
    assert (stored.event_id, stored.type, stored.schema_version) == (event.event_id, "Happened", 3)
    assert (stored.data, stored.metadata) == (data, metadata)
    assert stored.position == one.position


async def test_an_append_whose_data_is_not_json_fails_only_its_own_caller(
    store: PostgresEventStore,
) -> None:
    bad, good = stream(), stream()
    unencodable = NewEvent(uuid.uuid4(), "Happened", {"amount": Decimal("1.50")})

    # Neither the set-based statement nor the careful one can be built for the whole group;
    # alone, the bad append fails and the other is stored.
    refused, stored = await asyncio.wait_for(
        in_one_group(
            store,
            [
                [StreamAppend(bad, [unencodable], NO_STREAM)],
                [StreamAppend(good, [new_event()], NO_STREAM)],
            ],
            committed=False,
        ),
        timeout=30,
    )

    assert isinstance(refused, TypeError)
    assert isinstance(stored, AppendResult) and stored.versions == {good: 1}
    assert await store.read_stream(bad) == []
