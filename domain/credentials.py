"""The credentials port: password hashes, kept on the write side and out of every event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from domain.event_store import AppendResult, StreamAppend


@dataclass(frozen=True)
class PasswordCredential:
    """The hash of the password a user signs in with."""

    user_id: str
    password_hash: str


class Credentials(Protocol):
    """Where password hashes live: written with the event that records them, read to sign in."""

    async def append_with(
        self, credential: PasswordCredential, *streams: StreamAppend
    ) -> AppendResult:
        """Append the streams and set the credential atomically, idempotent by event id."""
        ...

    async def password_hash(self, user_id: str) -> str | None:
        """The user's password hash, or None if none was set."""
        ...
