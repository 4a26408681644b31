"""The lock a match asks for has an id derived from the match's events alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from activities.patterns import lock_command
from domain.patterns import SUSPICIOUS_LOGINS, Match, Occurrence, observe
from runtime.patterns import lock_user_workflow_id

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def at(minutes: float, event_id: str) -> Occurrence:
    return Occurrence(T0 + timedelta(minutes=minutes), event_id)


def matched(stored: list[Occurrence], new: Occurrence) -> Match:
    seen = observe(SUSPICIOUS_LOGINS, "user-1", stored, new)
    assert seen.match is not None
    return seen.match


def test_the_same_events_in_any_arrival_order_give_the_same_lock_workflow_id() -> None:
    in_order = matched([at(0, "a"), at(2, "b")], at(4, "c"))
    out_of_order = matched([at(4, "c"), at(0, "a")], at(2, "b"))

    ids = {lock_user_workflow_id(lock_command(m)) for m in (in_order, out_of_order)}
    assert ids == {"lock-user/cep/suspicious-logins/user-1/a"}


def test_a_match_starting_at_another_event_gets_another_lock_workflow_id() -> None:
    first = matched([at(0, "a"), at(2, "b")], at(4, "c"))
    second = matched([at(6, "d"), at(7, "e")], at(8, "f"))

    assert lock_user_workflow_id(lock_command(first)) != lock_user_workflow_id(lock_command(second))
    assert lock_command(first).user_id == lock_command(second).user_id == "user-1"
