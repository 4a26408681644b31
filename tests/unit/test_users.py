"""User rules: given past events, when a command, then events or an error."""

from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from domain.events import from_data, to_data
from domain.users import (
    EmailAlreadyInUse,
    User,
    UserAlreadyExists,
    UserEmailChanged,
    UserLocked,
    UserNotFound,
    UserRegistered,
    UserStatus,
    UserUnlocked,
    check_password,
    normalise_email,
    normalise_name,
)


def registered(user_id: str = "u1") -> User:
    return User.replay(user_id, [UserRegistered(user_id, "ann@example.com", "Ann")])


def test_register_records_normalised_email_and_name() -> None:
    user = User("u1")
    event = user.register("  Ann@Example.COM ", " Ann ")
    assert event == UserRegistered("u1", "ann@example.com", "Ann")
    assert user.pending == [event]
    assert user.email == "ann@example.com"


def test_registering_twice_is_rejected() -> None:
    with pytest.raises(UserAlreadyExists):
        registered().register("bob@example.com", "Bob")


@pytest.mark.parametrize(
    "email",
    ["", "plain", "a@b", "a b@example.com", "a@-example.com", "é@example.com", "a@" + "x" * 300],
)
def test_invalid_emails_are_rejected(email: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        normalise_email(email)
    assert raised.value.field == "email"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "x" * 201,
        "bad\x00name",
        "tab\tname",
        "\u200d",
        "\u200c\u200c",
        " \u200d ",
        "\u115f",
        "\u1160",
        "\u3164",
        "\uffa0",
        "\u3164 \uffa0",
        "\u2800",
        "\u0301",
        "\u200dAnn",
        "Ann\u200c",
    ],
)
def test_invalid_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        normalise_name(name)
    assert raised.value.field == "name"


@pytest.mark.parametrize("password", ["short", "x" * 257])
def test_passwords_outside_the_length_bounds_are_rejected(password: str) -> None:
    with pytest.raises(InvalidInput):
        check_password(password)


def test_change_email_records_old_and_new_address() -> None:
    user = registered()
    event = user.change_email("New@Example.com")
    assert event == UserEmailChanged("u1", "ann@example.com", "new@example.com")
    assert user.email == "new@example.com"


def test_changing_to_the_same_email_records_nothing() -> None:
    user = registered()
    assert user.change_email("ANN@example.com") is None
    assert user.pending == []


def test_changing_email_of_an_unknown_user_is_rejected() -> None:
    with pytest.raises(UserNotFound):
        User("nobody").change_email("x@example.com")


def test_lock_and_unlock_change_status() -> None:
    user = User.replay("u1", [UserRegistered("u1", "a@example.com", "A"), UserLocked("u1", "x")])
    assert user.status is UserStatus.LOCKED
    user.apply(UserUnlocked("u1"))
    assert user.status is UserStatus.ACTIVE
    assert user.version == 2


def test_email_in_use_error_names_the_address() -> None:
    assert "ann@example.com" in EmailAlreadyInUse("ann@example.com").message


def test_a_stored_version_1_registration_is_read_without_its_password_hash() -> None:
    data = {"user_id": "u1", "email": "a@example.com", "name": "A", "password_hash": "h"}
    event = from_data("UserRegistered", data, schema_version=1)
    assert event == UserRegistered("u1", "a@example.com", "A")
    assert "password_hash" not in to_data(event)


@pytest.mark.parametrize(
    "name", ["Ann\u200dMarie", "\u0645\u0647\u200c\u0633\u0627", "👩\u200d💻 Ada", "Zoë"]
)
def test_names_keep_the_joiners_scripts_and_emoji_need(name: str) -> None:
    assert normalise_name(name) == name
