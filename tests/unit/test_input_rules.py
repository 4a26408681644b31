"""The pure rules of the input boundary: text, ids, decimals, amounts, emails, balances."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.accounts import Account, AccountOpened, BalanceCeilingExceeded, MoneyDeposited
from domain.errors import InvalidInput
from domain.inputs import MAX_ID_LENGTH, MAX_TEXT_LENGTH, check_id, check_text
from domain.money import MAX_BALANCE, MAX_DECIMAL, check_amount, parse_decimal
from domain.users import normalise_email


@pytest.mark.parametrize(
    "text", ["a\x00b", "a\ud800b", "\udfff", "bell\x07", "line\nbreak", "tab\t", "del\x7f", "\x85"]
)
def test_text_with_nul_controls_or_lone_surrogates_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_text("name", text)
    assert raised.value.field == "name"


def test_text_past_its_bound_is_refused_and_up_to_it_is_kept() -> None:
    assert check_text("name", "é" * MAX_TEXT_LENGTH) == "é" * MAX_TEXT_LENGTH
    with pytest.raises(InvalidInput):
        check_text("name", "x" * (MAX_TEXT_LENGTH + 1))
    with pytest.raises(InvalidInput):
        check_text("name", "x" * 11, max_length=10)


@pytest.mark.parametrize("text", ["Ann", "Zoë ١٢٣", "💸", "", "O'Brien & Sons"])
def test_printable_text_in_any_script_is_kept(text: str) -> None:
    assert check_text("name", text) == text


@pytest.mark.parametrize(
    "value",
    ["7d6f0c1e-3c1a-4b8e-9c3e-5d2f1a0b9c8d", "transfer/t-1", "a.b:c_d", "X" * MAX_ID_LENGTH],
)
def test_ids_of_the_alphabet_are_kept(value: str) -> None:
    assert check_id("accountId", value) == value


@pytest.mark.parametrize(
    "value", ["", "a b", "١٢٣", "é", "a\x00b", "a\ud800", "<a>", "a;b", "X" * (MAX_ID_LENGTH + 1)]
)
def test_ids_outside_the_alphabet_or_the_length_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_id("accountId", value)
    assert raised.value.field == "accountId"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5", "5.00"),
        ("12.5", "12.50"),
        ("0.01", "0.01"),
        ("-3.25", "-3.25"),
        ("007", "7.00"),
        (str(MAX_DECIMAL), str(MAX_DECIMAL)),
    ],
)
def test_a_decimal_is_ascii_digits_with_two_places_at_most(text: str, value: str) -> None:
    assert parse_decimal(text, "amount") == Decimal(value)
    assert str(parse_decimal(text, "amount")) == value


@pytest.mark.parametrize(
    "text",
    [
        "١٢٣",
        "\u0663.\u0665",
        "\uff11\uff12",
        " 5 ",
        "5\n",
        "1E+2",
        "1e2",
        "0.001",
        "+5",
        ".5",
        "5.",
        "1,50",
        "1_000",
        "NaN",
        "Infinity",
        "",
        "-",
        "1000000000.01",
        "9" * 100_000,
    ],
)
def test_anything_else_is_not_a_decimal(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_decimal(text, "amount")
    assert raised.value.field == "amount"


@pytest.mark.parametrize("amount", ["0", "-0.01", "-5"])
def test_an_amount_of_money_to_move_is_above_zero(amount: str) -> None:
    with pytest.raises(InvalidInput):
        check_amount(Decimal(amount))
    assert check_amount(Decimal("0.01")) == Decimal("0.01")


@pytest.mark.parametrize(
    "email",
    [
        "<script>alert(1)</script>@x.com",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        '"quoted"@example.com',
        "a(comment)@example.com",
        "a,b@example.com",
        "a@example.123",
        "a@exa_mple.com",
        "x" * 65 + "@example.com",
        "a@" + "x" * 64 + ".com",
        "a@" + ".".join(["x" * 60] * 5) + ".com",
    ],
)
def test_addresses_outside_the_grammar_are_refused(email: str) -> None:
    with pytest.raises(InvalidInput):
        normalise_email(email)


@pytest.mark.parametrize(
    ("email", "normal"),
    [
        (" Ann@Example.COM ", "ann@example.com"),
        ("o'brien+tag@mail.example.ie", "o'brien+tag@mail.example.ie"),
        ("a.b-c_d@x-y.co", "a.b-c_d@x-y.co"),
        ("x" * 64 + "@example.com", "x" * 64 + "@example.com"),
    ],
)
def test_addresses_of_the_grammar_are_normalised(email: str, normal: str) -> None:
    assert normalise_email(email) == normal


def holding(balance: str) -> Account:
    return Account.replay(
        "acc-1",
        [
            AccountOpened("acc-1", "u1", "EUR", Decimal("10000.00")),
            MoneyDeposited("acc-1", Decimal(balance)),
        ],
    )


def test_a_deposit_may_fill_an_account_up_to_the_ceiling() -> None:
    account = holding("999999999.00")
    account.deposit(Decimal("1.00"))
    assert account.balance == MAX_BALANCE


def test_a_deposit_past_the_ceiling_is_refused() -> None:
    account = holding("999999999.00")
    with pytest.raises(BalanceCeilingExceeded):
        account.deposit(Decimal("1.01"))
    assert account.pending == []
