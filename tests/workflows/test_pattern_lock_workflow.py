"""A match handled twice (a redelivery after a failed commit) locks the user through one run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client

from activities.patterns import lock_command
from adapters.event_store import PostgresEventStore
from domain.patterns import SUSPICIOUS_LOGINS, Match, Occurrence
from domain.users import User, UserStatus
from runtime.patterns import lock_user_starter, lock_user_workflow_id
from tests.workflows.bank import Bank

pytestmark = pytest.mark.usefixtures("worker")


def match_for(user_id: str, event_ids: list[str]) -> Match:
    """The match of these events, built afresh as the detector builds it from its windows."""
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    occurrences = tuple(
        Occurrence(start + timedelta(minutes=n), i) for n, i in enumerate(event_ids)
    )
    return Match(SUSPICIOUS_LOGINS.name, user_id, occurrences)


async def test_the_same_match_started_again_after_its_lock_closed_starts_no_second_run(
    store: PostgresEventStore, client: Client, task_queue: str
) -> None:
    bank = Bank(store, client, task_queue)
    user_id = await bank.user()
    event_ids = [str(uuid.uuid4()) for _ in range(3)]
    start = lock_user_starter(client, task_queue)

    await start(lock_command(match_for(user_id, event_ids)))
    workflow_id = lock_user_workflow_id(lock_command(match_for(user_id, event_ids)))
    handle = client.get_workflow_handle(workflow_id)
    await handle.result()
    first_run = (await handle.describe()).run_id
    # The same events again, as when the detector's commit failed and the message is redelivered.
    await start(lock_command(match_for(user_id, event_ids)))

    assert (await handle.describe()).run_id == first_run
    user = await bank.repository.load(User, user_id)
    assert user.status is UserStatus.LOCKED
    stream = await store.read_stream(user_id)
    assert [e.type for e in stream].count("UserLocked") == 1
