"""Pattern matching on event time: windows, out-of-order arrival, expiry, consumption."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.patterns import SUSPICIOUS_LOGINS, Occurrence, Pattern, observe

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def at(minutes: float, event_id: str) -> Occurrence:
    return Occurrence(T0 + timedelta(minutes=minutes), event_id)


def test_three_failures_within_five_minutes_match_on_the_third() -> None:
    stored = [at(0, "a"), at(2, "b")]
    seen = observe(SUSPICIOUS_LOGINS, "u", stored, at(4, "c"))
    assert seen.match is not None
    assert [o.event_id for o in seen.match.occurrences] == ["a", "b", "c"]
    assert seen.match.window_start == T0 and seen.match.window_end == T0 + timedelta(minutes=4)
    assert seen.match.match_id == "suspicious-logins/u/a"


def test_a_match_consumes_its_occurrences() -> None:
    seen = observe(SUSPICIOUS_LOGINS, "u", [at(0, "a"), at(2, "b")], at(4, "c"))
    assert not seen.keep
    assert set(seen.remove) == {at(0, "a"), at(2, "b")}


def test_three_failures_spread_over_six_minutes_do_not_match() -> None:
    seen = observe(SUSPICIOUS_LOGINS, "u", [at(0, "a"), at(3, "b")], at(6, "c"))
    assert seen.match is None
    assert seen.keep
    assert seen.remove == (at(0, "a"),)


def test_exactly_five_minutes_apart_still_match() -> None:
    seen = observe(SUSPICIOUS_LOGINS, "u", [at(0, "a"), at(2.5, "b")], at(5, "c"))
    assert seen.match is not None


def test_an_event_arriving_out_of_order_within_the_window_completes_a_match() -> None:
    seen = observe(SUSPICIOUS_LOGINS, "u", [at(4, "c"), at(1, "a")], at(2, "b"))
    assert seen.match is not None
    assert [o.event_id for o in seen.match.occurrences] == ["a", "b", "c"]
    assert seen.match.match_id == "suspicious-logins/u/a"


def test_an_event_later_than_the_window_is_ignored() -> None:
    seen = observe(SUSPICIOUS_LOGINS, "u", [at(10, "b"), at(11, "c")], at(4, "late"))
    assert seen.match is None
    assert not seen.keep
    assert seen.remove == ()


def test_occurrences_older_than_the_window_before_the_newest_expire() -> None:
    stored = [at(0, "a"), at(1, "b")]
    seen = observe(SUSPICIOUS_LOGINS, "u", stored, at(7, "c"))
    assert set(seen.remove) == {at(0, "a"), at(1, "b")}
    assert seen.keep and seen.match is None


def test_the_earliest_run_containing_the_new_event_wins() -> None:
    stored = [at(0, "a"), at(1, "b"), at(9, "x")]
    seen = observe(SUSPICIOUS_LOGINS, "u", stored, at(2, "c"))
    assert seen.match is None  # a and b expired: 9 - 5 = 4 > 2, and c itself is late
    stored = [at(0, "a"), at(1, "b"), at(3, "d")]
    seen = observe(SUSPICIOUS_LOGINS, "u", stored, at(2, "c"))
    assert seen.match is not None
    assert [o.event_id for o in seen.match.occurrences] == ["a", "b", "c"]
    assert at(3, "d") not in seen.remove


def test_a_repeated_event_changes_nothing() -> None:
    seen = observe(SUSPICIOUS_LOGINS, "u", [at(0, "a"), at(1, "b")], at(1, "b"))
    assert seen == type(seen)(keep=False, remove=(), match=None)


def test_the_key_comes_from_the_key_field_of_wanted_types_meeting_the_condition() -> None:
    pattern = Pattern(
        "big-withdrawals",
        frozenset({"MoneyWithdrawn"}),
        "account_id",
        2,
        timedelta(minutes=1),
        condition=lambda data: float(data["amount"]) > 100,
    )
    assert pattern.key_of("MoneyWithdrawn", {"account_id": "a1", "amount": "150"}) == "a1"
    assert pattern.key_of("MoneyWithdrawn", {"account_id": "a1", "amount": "50"}) is None
    assert pattern.key_of("MoneyDeposited", {"account_id": "a1", "amount": "150"}) is None
    assert SUSPICIOUS_LOGINS.key_of("UserLoginFailed", {"user_id": "u1"}) == "u1"
    assert SUSPICIOUS_LOGINS.key_of("UserLoginSucceeded", {"user_id": "u1"}) is None


def test_a_pattern_needs_a_positive_count_and_window() -> None:
    with pytest.raises(ValueError):
        Pattern("p", frozenset({"X"}), "k", 0, timedelta(minutes=1))
    with pytest.raises(ValueError):
        Pattern("p", frozenset({"X"}), "k", 2, timedelta(0))
