"""Customer sessions: signed, expiring tokens naming one user.

A token is `s2.<user id, base64url>.<expiry, unix seconds>.<lock epoch>.<session id>.<signature>`,
the signature being HMAC-SHA256 under the configured session key over everything before it.
Nothing is stored per session: the signature proves the API issued it, the expiry bounds it,
and the user's read model (read on every request) revokes it when the user is locked: a locked
user is refused, and so is a session issued before the user's last lock (its lock epoch, the
version of that lock event, is not the user's any more), even once the user is unlocked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PREFIX = "s2"


@dataclass(frozen=True)
class Session:
    """Who a session token speaks for, and until when."""

    user_id: str
    session_id: str
    expires_at: datetime
    lock_epoch: int = 0
    """The version of the user's last lock when the session was issued (0: never locked)."""


class Sessions:
    """Issues and checks session tokens under one key."""

    def __init__(self, key: bytes, ttl: timedelta) -> None:
        self._key = key
        self._ttl = ttl

    def issue(
        self, user_id: str, now: datetime | None = None, *, lock_epoch: int = 0
    ) -> tuple[str, Session]:
        """A new token for the user (whose last lock was `lock_epoch`) and its session."""
        moment = now or datetime.now(UTC)
        expires = int((moment + self._ttl).timestamp())
        session = Session(
            user_id, secrets.token_hex(16), datetime.fromtimestamp(expires, UTC), lock_epoch
        )
        user = base64.urlsafe_b64encode(user_id.encode()).decode().rstrip("=")
        body = f"{PREFIX}.{user}.{expires}.{lock_epoch}.{session.session_id}"
        return f"{body}.{self._sign(body)}", session

    def verify(self, token: str, now: datetime | None = None) -> Session | None:
        """The session behind a token, or None if it is forged, malformed or expired."""
        if not token.isascii():  # every token `issue` makes is
            return None
        body, _, signature = token.rpartition(".")
        parts = body.split(".")
        if len(parts) != 5 or parts[0] != PREFIX:
            return None
        if not hmac.compare_digest(self._sign(body).encode(), signature.encode()):
            return None
        _, user, expires, epoch, session_id = parts
        try:
            user_id = base64.urlsafe_b64decode(user + "=" * (-len(user) % 4)).decode()
            expires_at = datetime.fromtimestamp(int(expires), UTC)
            lock_epoch = int(epoch)
        except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
            return None
        if expires_at <= (now or datetime.now(UTC)):
            return None
        return Session(user_id, session_id, expires_at, lock_epoch)

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
