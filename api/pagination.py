"""Relay connections with keyset cursors (stable under concurrent inserts)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import strawberry
from graphql import GraphQLError

from domain.errors import InvalidInput
from domain.inputs import check_id

N = TypeVar("N")
V = TypeVar("V")

MAX_PAGE = 100
DEFAULT_PAGE = 20


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[N]):
    cursor: str
    node: N


@strawberry.type
class Connection(Generic[N]):
    edges: list[Edge[N]]
    page_info: PageInfo


def page_size(first: int | None) -> int:
    """`first`, defaulted and capped; below 1 it is an error.

    A page of none is refused rather than answered: it holds nothing a page of one does not
    (a connection has no count), and its pageInfo could only say "more after no cursor"
    (`hasNextPage: true`, `endCursor: null`), which a client paging on `endCursor` would
    follow back to the first page for ever.
    """
    if first is None:
        return DEFAULT_PAGE
    if first < 1:
        raise GraphQLError("first must be at least 1", extensions={"code": "BAD_USER_INPUT"})
    return min(first, MAX_PAGE)


def encode_cursor(key: str) -> str:
    """An opaque cursor for a row's sort key."""
    return base64.urlsafe_b64encode(key.encode()).decode()


def decode_cursor(cursor: str | None) -> str | None:
    """The sort key behind a cursor: an id, or a stream version's digits."""
    if cursor is None:
        return None
    try:
        return check_id("after", base64.urlsafe_b64decode(cursor.encode()).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError, InvalidInput):
        raise GraphQLError("after is not a cursor", extensions={"code": "BAD_USER_INPUT"}) from None


def connection(
    rows: Sequence[V], size: int, key: Callable[[V], str], node: Callable[[V], N]
) -> Connection[N]:
    """A page from `size + 1` fetched rows: the extra row only tells that more exist."""
    page = list(rows[:size])
    edges = [Edge(cursor=encode_cursor(key(r)), node=node(r)) for r in page]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None
        ),
    )
