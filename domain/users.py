"""Users: registration, email changes, logins, locking."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domain.aggregate import Aggregate
from domain.errors import DomainError, InvalidInput
from domain.event_store import UniqueKey
from domain.events import DomainEvent, JsonDict, event_type, upcaster

EMAIL_SCOPE = "user_email"
# RFC 5322's dot-atom for the local part (no quoted strings, no comments), RFC 1035 labels
# for the domain, whose last label is not all digits; RFC 5321's lengths.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_EMAIL = re.compile(rf"(?=[^@]{{1,64}}@){_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+(?![0-9]+$){_LABEL}")
MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 200
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


class UserStatus(StrEnum):
    ACTIVE = "ACTIVE"
    LOCKED = "LOCKED"


@event_type
@dataclass(frozen=True)
class UserRegistered(DomainEvent):
    """A user signed up; the password they chose is kept on the write side, never here."""

    schema_version = 2

    user_id: str
    email: str
    name: str


@upcaster("UserRegistered", 1)
def _registered_without_password_hash(data: JsonDict) -> JsonDict:
    """Version 1 carried the password hash; reading it drops the hash."""
    return {key: value for key, value in data.items() if key != "password_hash"}


@event_type
@dataclass(frozen=True)
class UserEmailChanged(DomainEvent):
    user_id: str
    old_email: str
    new_email: str


@event_type
@dataclass(frozen=True)
class UserLoginSucceeded(DomainEvent):
    user_id: str


@event_type
@dataclass(frozen=True)
class UserLoginFailed(DomainEvent):
    user_id: str
    reason: str


@event_type
@dataclass(frozen=True)
class UserLocked(DomainEvent):
    user_id: str
    reason: str


@event_type
@dataclass(frozen=True)
class UserUnlocked(DomainEvent):
    user_id: str


@event_type
@dataclass(frozen=True)
class SuspiciousUserActivity(DomainEvent):
    """A pattern matched a user's events; kept on its own stream, not the user's."""

    user_id: str
    detected_at: datetime
    event_count: int
    window_start: datetime
    window_end: datetime
    pattern: str
    event_ids: tuple[str, ...]


def suspicious_activity_stream(user_id: str) -> str:
    """The stream holding a user's suspicious-activity detections."""
    return f"suspicious-activity-{user_id}"


@dataclass(frozen=True)
class RegisterUser:
    """Register a new user; the password's hash is held for the command, not carried by it.

    `password_hash` is empty: it is set only in commands sent before hashes were held, which
    recorded workflow histories still carry.
    """

    command_id: str
    user_id: str
    email: str
    name: str
    password_hash: str = ""
    actor: str = "anonymous"


@dataclass(frozen=True)
class ChangeUserEmail:
    """Give a user a new email address."""

    command_id: str
    user_id: str
    new_email: str
    expected_version: int | None = None
    actor: str = "anonymous"


@dataclass(frozen=True)
class LockUser:
    """Lock a user, e.g. after suspicious activity."""

    command_id: str
    user_id: str
    reason: str
    actor: str = "anonymous"


@dataclass(frozen=True)
class UnlockUser:
    """An operator lets a locked user act again."""

    command_id: str
    user_id: str
    actor: str = "anonymous"


@dataclass(frozen=True)
class RecordLoginAttempt:
    """Record that someone signed in as the user, or failed to."""

    command_id: str
    user_id: str
    succeeded: bool
    reason: str = ""
    actor: str = "anonymous"


class EmailAlreadyInUse(DomainError):
    def __init__(self, email: str) -> None:
        super().__init__(f"email {email} is already in use", email=email)


class UserNotFound(DomainError):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id} not found", user_id=user_id)


class UserAlreadyExists(DomainError):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id} already exists", user_id=user_id)


class UserLockedError(DomainError):
    code = "UserLocked"

    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id} is locked", user_id=user_id)


def normalise_email(raw: str) -> str:
    """A valid email address in canonical (trimmed, lower-case) form."""
    email = raw.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH or not email.isascii() or not _EMAIL.fullmatch(email):
        raise InvalidInput("email", "is not a valid email address")
    return email


def normalise_name(raw: str) -> str:
    """A display name: trimmed, printable (nothing hidden or reordering), with at least one
    visible character and no joiner at either end, at most 200 characters."""
    name = unicodedata.normalize("NFC", raw.strip())
    # Checked before trimming: trimming takes a line separator or a C1 control off an end.
    if any(_hidden_or_unassigned(c) for c in raw):
        raise InvalidInput(
            "name",
            "must not contain control, format (bidi, zero-width), separator or unassigned "
            "characters",
        )
    if not any(_visible(c) for c in name):
        raise InvalidInput("name", "must have a letter, number, symbol or punctuation mark")
    if name[0] in _NAME_JOINERS or name[-1] in _NAME_JOINERS:
        raise InvalidInput("name", "must not begin or end with a zero-width joiner")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput("name", f"must be at most {MAX_NAME_LENGTH} characters")
    return name


_NAME_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Controls, format characters (bidi overrides and isolates, zero-width spaces, byte order
marks), surrogates, private use, unassigned code points and line or paragraph separators:
what reorders or hides a name's text, or is not text at all."""
_NAME_JOINERS = frozenset({"\u200c", "\u200d"})
"""Zero-width non-joiner and joiner: format characters some scripts' spelling (Persian,
Indic) and emoji sequences need, which reorder nothing."""


_BLANK_LETTERS = frozenset({"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"})
"""Hangul fillers and the blank braille pattern: letters and symbols by their category that
show nothing."""


def _visible(c: str) -> bool:
    return unicodedata.category(c)[0] in "LNSP" and c not in _BLANK_LETTERS


def _hidden_or_unassigned(c: str) -> bool:
    return c not in _NAME_JOINERS and unicodedata.category(c) in _NAME_REFUSED_CATEGORIES


def check_password(password: str) -> str:
    """A password long enough to hash and short enough to be a password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput("password", f"must be at most {MAX_PASSWORD_LENGTH} characters")
    return password


def email_key(email: str) -> UniqueKey:
    """The unique key a user's email address claims."""
    return UniqueKey(EMAIL_SCOPE, email)


class User(Aggregate):
    """A person who can sign in and own accounts."""

    snapshot_every = 100
    # Version 1 snapshots held the password hash.
    snapshot_schema = 2

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.email = ""
        self.name = ""
        self.status = UserStatus.ACTIVE

    def register(self, email: str, name: str) -> UserRegistered:
        if self.exists:
            raise UserAlreadyExists(self.id)
        event = UserRegistered(self.id, normalise_email(email), normalise_name(name))
        self.record(event)
        return event

    def change_email(self, new_email: str) -> UserEmailChanged | None:
        """Change the email; None when it already is that address."""
        self._require_exists()
        email = normalise_email(new_email)
        if email == self.email:
            return None
        event = UserEmailChanged(self.id, self.email, email)
        self.record(event)
        return event

    def snapshot_state(self) -> JsonDict:
        return {
            "email": self.email,
            "name": self.name,
            "status": self.status.value,
        }

    def restore_state(self, state: JsonDict) -> None:
        self.email = state["email"]
        self.name = state["name"]
        self.status = UserStatus(state["status"])

    def record_login(self, succeeded: bool, reason: str) -> UserLoginSucceeded | UserLoginFailed:
        """Record a sign-in attempt; a locked user's successful password still fails."""
        self._require_exists()
        event: UserLoginSucceeded | UserLoginFailed
        if succeeded and self.status is UserStatus.ACTIVE:
            event = UserLoginSucceeded(self.id)
        else:
            event = UserLoginFailed(self.id, reason or "locked")
        self.record(event)
        return event

    def lock(self, reason: str) -> UserLocked | None:
        """Lock the user; None when already locked."""
        self._require_exists()
        if self.status is UserStatus.LOCKED:
            return None
        event = UserLocked(self.id, reason)
        self.record(event)
        return event

    def unlock(self) -> UserUnlocked | None:
        """Unlock the user; None when not locked."""
        self._require_exists()
        if self.status is UserStatus.ACTIVE:
            return None
        event = UserUnlocked(self.id)
        self.record(event)
        return event

    def require_active(self) -> None:
        """Reject the command when the user is locked."""
        self._require_exists()
        if self.status is UserStatus.LOCKED:
            raise UserLockedError(self.id)

    def _require_exists(self) -> None:
        if not self.exists:
            raise UserNotFound(self.id)

    def apply(self, event: DomainEvent) -> None:
        match event:
            case UserRegistered(email=email, name=name):
                self.email, self.name = email, name
            case UserEmailChanged(new_email=new_email):
                self.email = new_email
            case UserLocked():
                self.status = UserStatus.LOCKED
            case UserUnlocked():
                self.status = UserStatus.ACTIVE
            case UserLoginSucceeded() | UserLoginFailed():
                pass
            case _:
                raise TypeError(f"User cannot apply {type(event).__name__}")
