"""The credentials port: password hashes, kept on the write side and out of every event.

A hash never travels in a command either (a command is a workflow's input, which Temporal
keeps in its history): the API holds it under the command's id before it sends the command,
and the command's activity sets it from there, in the transaction of the event it appends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from domain.event_store import AppendResult, StreamAppend


@dataclass(frozen=True)
class PasswordCredential:
    """The hash of the password a user signs in with."""

    user_id: str
    password_hash: str


class NoHeldCredential(Exception):
    """A command was to set a credential, but none is held for it."""

    def __init__(self, command_id: str) -> None:
        super().__init__(f"no credential is held for command {command_id}")
        self.command_id = command_id


class Credentials(Protocol):
    """Where password hashes live: held for a command, set with its event, read to sign in."""

    async def hold(self, command_id: str, credential: PasswordCredential) -> str | None:
        """Keep the credential until the command appends with it, unless the command has
        one (held, or set by its append): then answer that one's hash and change nothing.

        The first credential held for a command is the one it sets, so a request that reuses
        the command's id cannot replace it. None means this credential is now held.
        """
        ...

    async def append_with(self, command_id: str, *streams: StreamAppend) -> AppendResult:
        """Append the streams and set the credential held for the command, atomically.

        Idempotent by event id: a repeated append answers as before and sets nothing. A new
        append with no credential held raises NoHeldCredential and appends nothing.
        """
        ...

    async def discard(self, command_id: str) -> None:
        """Forget the credential held for a command that will not append (no-op if none)."""
        ...

    async def password_hash(self, user_id: str) -> str | None:
        """The user's password hash, or None if none was set."""
        ...
