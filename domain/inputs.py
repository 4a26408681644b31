"""What a string from a client may hold, whatever field it fills.

No text may carry NUL, other control characters or lone surrogates, nor run past a bound. An
id (of a user, an account, a transfer, a saga or a stream) is a short run of ASCII letters,
digits and a few separators: the alphabet of the ids the system hands out.
"""

from __future__ import annotations

import re
import unicodedata

from domain.errors import InvalidInput

MAX_TEXT_LENGTH = 1024
"""The longest text any field takes; fields with a rule of their own (emails, names,
passwords, ids) are bounded tighter by it."""
MAX_ID_LENGTH = 200
_ID = re.compile(r"[A-Za-z0-9._:/-]+")
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs"})
"""Control characters (NUL among them) and surrogates, which are never text on their own."""


def check_text(field: str, value: str, max_length: int = MAX_TEXT_LENGTH) -> str:
    """The value, if it is printable text of at most `max_length` characters."""
    if len(value) > max_length:
        raise InvalidInput(field, f"must be at most {max_length} characters")
    if any(unicodedata.category(c) in _FORBIDDEN_CATEGORIES for c in value):
        raise InvalidInput(field, "must not contain NUL, control characters or lone surrogates")
    return value


def check_id(field: str, value: str) -> str:
    """The value, if it has the form of an id."""
    if not 0 < len(value) <= MAX_ID_LENGTH or not _ID.fullmatch(value):
        raise InvalidInput(
            field,
            f"must be 1-{MAX_ID_LENGTH} characters of ASCII letters, digits, "
            "'.', '_', ':', '/' or '-'",
        )
    return value


def check_version(field: str, value: int | None) -> int | None:
    """The value, if it can be an aggregate's version (none yet is 0, the first event 1)."""
    if value is not None and value < 0:
        raise InvalidInput(field, "must be a version: 0 or more")
    return value
