"""What every credentials adapter must do: hashes commit with their event, never inside it.

Subclassed in tests/unit (in memory) and tests/integration (Postgres); a subclass provides
the `store` and `credentials` fixtures.
"""

from __future__ import annotations

import uuid

import pytest

from domain.credentials import Credentials, NoHeldCredential, PasswordCredential
from domain.event_store import NO_STREAM, EventStore, NewEvent, StreamAppend, WrongExpectedVersion


def registration(user_id: str) -> StreamAppend:
    data = {"user_id": user_id, "email": f"{user_id}@example.com", "name": "C"}
    return StreamAppend(user_id, [NewEvent(uuid.uuid4(), "UserRegistered", data)], NO_STREAM)


async def held(credentials: Credentials, user_id: str, password_hash: str) -> str:
    """A new command's id, with the credential held for it."""
    command_id = f"command-{uuid.uuid4()}"
    await credentials.hold(command_id, PasswordCredential(user_id, password_hash))
    return command_id


class CredentialsContract:
    async def test_the_held_hash_is_stored_beside_the_event_not_in_it(
        self, store: EventStore, credentials: Credentials
    ) -> None:
        user_id = f"user-{uuid.uuid4()}"
        command_id = await held(credentials, user_id, "the-hash")
        await credentials.append_with(command_id, registration(user_id))
        assert await credentials.password_hash(user_id) == "the-hash"
        (stored,) = await store.read_stream(user_id)
        assert "the-hash" not in repr(stored)

    async def test_a_refused_append_sets_no_credential(
        self, store: EventStore, credentials: Credentials
    ) -> None:
        user_id = f"user-{uuid.uuid4()}"
        await store.append(registration(user_id))
        command_id = await held(credentials, user_id, "intruder")
        with pytest.raises(WrongExpectedVersion):
            await credentials.append_with(command_id, registration(user_id))
        assert await credentials.password_hash(user_id) is None

    async def test_a_repeated_append_answers_as_before_and_keeps_the_hash(
        self, credentials: Credentials
    ) -> None:
        user_id = f"user-{uuid.uuid4()}"
        append = registration(user_id)
        command_id = await held(credentials, user_id, "h1")
        first = await credentials.append_with(command_id, append)
        again = await credentials.append_with(command_id, append)
        assert again == first
        assert await credentials.password_hash(user_id) == "h1"

    async def test_a_hash_held_again_after_the_append_does_not_replace_the_set_one(
        self, credentials: Credentials
    ) -> None:
        user_id = f"user-{uuid.uuid4()}"
        append = registration(user_id)
        command_id = await held(credentials, user_id, "h1")
        first = await credentials.append_with(command_id, append)
        await credentials.hold(command_id, PasswordCredential(user_id, "h2"))
        assert await credentials.append_with(command_id, append) == first
        assert await credentials.password_hash(user_id) == "h1"

    async def test_a_new_append_with_no_held_hash_appends_nothing(
        self, store: EventStore, credentials: Credentials
    ) -> None:
        user_id = f"user-{uuid.uuid4()}"
        with pytest.raises(NoHeldCredential):
            await credentials.append_with(f"command-{uuid.uuid4()}", registration(user_id))
        assert await store.read_stream(user_id) == []
        assert await credentials.password_hash(user_id) is None

    async def test_a_discarded_hash_is_never_set(
        self, store: EventStore, credentials: Credentials
    ) -> None:
        user_id = f"user-{uuid.uuid4()}"
        command_id = await held(credentials, user_id, "h1")
        await credentials.discard(command_id)
        await credentials.discard(command_id)
        with pytest.raises(NoHeldCredential):
            await credentials.append_with(command_id, registration(user_id))
        assert await store.read_stream(user_id) == []

    async def test_the_first_hash_held_for_a_command_is_the_one_set(
        self, credentials: Credentials
    ) -> None:
        user_id = f"user-{uuid.uuid4()}"
        command_id = await held(credentials, user_id, "h1")
        assert await credentials.hold(command_id, PasswordCredential(user_id, "h2")) == "h1"
        await credentials.append_with(command_id, registration(user_id))
        assert await credentials.password_hash(user_id) == "h1"

    async def test_a_hash_held_after_the_append_answers_the_set_one_and_stays_not_held(
        self, store: EventStore, credentials: Credentials
    ) -> None:
        user_id = f"user-{uuid.uuid4()}"
        command_id = await held(credentials, user_id, "h1")
        await credentials.append_with(command_id, registration(user_id))
        assert await credentials.hold(command_id, PasswordCredential(user_id, "h2")) == "h1"
        with pytest.raises(NoHeldCredential):
            await credentials.append_with(command_id, registration(f"user-{uuid.uuid4()}"))

    async def test_a_new_hold_answers_none(self, credentials: Credentials) -> None:
        credential = PasswordCredential(f"user-{uuid.uuid4()}", "h1")
        assert await credentials.hold(f"command-{uuid.uuid4()}", credential) is None

    async def test_an_unknown_user_has_no_hash(self, credentials: Credentials) -> None:
        assert await credentials.password_hash(f"user-{uuid.uuid4()}") is None
