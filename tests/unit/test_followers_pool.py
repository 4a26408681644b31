"""The followers process's database pool holds what its followers need at once."""

from __future__ import annotations

from projections.catalog import all_projections
from runtime.followers import pool_size


def test_the_pool_holds_two_connections_for_every_singleton_and_a_rebuild_at_once() -> None:
    # After a failover one followers process runs every singleton: the relay, the pattern
    # detector and a projector per projection, each with a batch and a page read ahead.
    singletons = 2 + len(all_projections())

    assert pool_size() >= 2 * (singletons + 1)


def test_the_pool_splits_evenly_into_pool_and_overflow() -> None:
    assert pool_size() % 2 == 0
