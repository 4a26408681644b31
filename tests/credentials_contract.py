"""What every credentials adapter must do: hashes commit with their event, never inside it.

Subclassed in tests/unit (in memory) and tests/integration (Postgres); a subclass provides
the `store` and `credentials` fixtures.
"""

from __future__ import annotations

import uuid

import pytest

from domain.credentials import Credentials, PasswordCredential
from domain.event_store import NO_STREAM, EventStore, NewEvent, StreamAppend, WrongExpectedVersion


def registration(user_id: str) -> StreamAppend:
    data = {"user_id": user_id, "email": f"{user_id}@example.com", "name": "C"}
    return StreamAppend(user_id, [NewEvent(uuid.uuid4(), "UserRegistered", data)], NO_STREAM)


class CredentialsContract:
    async def test_the_hash_is_stored_beside_the_event_not_in_it(
        self, store: EventStore, credentials: Credentials
    ) -> None:
        user_id = f"user-{uuid.uuid4()}"
        await credentials.append_with(
            PasswordCredential(user_id, "the-hash"), registration(user_id)
        )
        assert await credentials.password_hash(user_id) == "the-hash"
        (stored,) = await store.read_stream(user_id)
        assert "the-hash" not in repr(stored)

    async def test_a_refused_append_sets_no_credential(
        self, store: EventStore, credentials: Credentials
    ) -> None:
        user_id = f"user-{uuid.uuid4()}"
        await store.append(registration(user_id))
        with pytest.raises(WrongExpectedVersion):
            await credentials.append_with(
                PasswordCredential(user_id, "intruder"), registration(user_id)
            )
        assert await credentials.password_hash(user_id) is None

    async def test_a_repeated_append_answers_as_before_and_keeps_the_hash(
        self, credentials: Credentials
    ) -> None:
        user_id = f"user-{uuid.uuid4()}"
        append = registration(user_id)
        first = await credentials.append_with(PasswordCredential(user_id, "h1"), append)
        again = await credentials.append_with(PasswordCredential(user_id, "h1"), append)
        assert again == first
        assert await credentials.password_hash(user_id) == "h1"

    async def test_an_unknown_user_has_no_hash(self, credentials: Credentials) -> None:
        assert await credentials.password_hash(f"user-{uuid.uuid4()}") is None
