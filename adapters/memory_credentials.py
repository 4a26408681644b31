"""In-memory credentials beside an in-memory event store, for tests."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.memory_event_store import InMemoryEventStore
from domain.credentials import Credentials, NoHeldCredential, PasswordCredential
from domain.event_store import AppendResult, StreamAppend


class InMemoryCredentials(Credentials):
    """Behaves as `PostgresCredentials` does: the credential is set only if the append succeeds."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self._store = store
        self._held: dict[str, PasswordCredential] = {}
        self._hashes: dict[str, str] = {}

    async def hold(self, command_id: str, credential: PasswordCredential) -> str | None:
        """Keep the credential unless the command has one; answer that one's hash, or None."""
        held = self._held.get(command_id)
        if held is not None:
            return held.password_hash
        set_before = self._hashes.get(credential.user_id)
        if set_before is None:
            self._held[command_id] = credential
        return set_before

    async def append_with(self, command_id: str, *streams: StreamAppend) -> AppendResult:
        """Append the streams and set the credential held for the command, atomically."""
        # Nothing here awaits anything that suspends, so nothing runs in between.
        held = self._held.get(command_id)
        if held is None and not await self._appended_before(streams):
            raise NoHeldCredential(command_id)
        head = await self._store.head_position()
        result = await self._store.append(*streams)
        if held is not None and await self._store.head_position() > head:
            del self._held[command_id]
            self._hashes[held.user_id] = held.password_hash
        return result

    async def discard(self, command_id: str) -> None:
        """Forget the credential held for a command that will not append (no-op if none)."""
        self._held.pop(command_id, None)

    async def password_hash(self, user_id: str) -> str | None:
        """The user's password hash, or None if none was set."""
        return self._hashes.get(user_id)

    async def _appended_before(self, streams: Sequence[StreamAppend]) -> bool:
        recorded = await self._store.read_streams({s.stream_id: 1 for s in streams})
        stored = {e.event_id for events in recorded.values() for e in events}
        return all(e.event_id in stored for s in streams for e in s.events)
