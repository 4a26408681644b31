"""In-memory credentials beside an in-memory event store, for tests."""

from __future__ import annotations

from adapters.memory_event_store import InMemoryEventStore
from domain.credentials import Credentials, PasswordCredential
from domain.event_store import AppendResult, StreamAppend


class InMemoryCredentials(Credentials):
    """Behaves as `PostgresCredentials` does: the credential is set only if the append succeeds."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self._store = store
        self._hashes: dict[str, str] = {}

    async def append_with(
        self, credential: PasswordCredential, *streams: StreamAppend
    ) -> AppendResult:
        """Append the streams and set the credential atomically, idempotent by event id."""
        # The store's append never awaits, so nothing runs between it and the credential.
        result = await self._store.append(*streams)
        self._hashes[credential.user_id] = credential.password_hash
        return result

    async def password_hash(self, user_id: str) -> str | None:
        """The user's password hash, or None if none was set."""
        return self._hashes.get(user_id)
