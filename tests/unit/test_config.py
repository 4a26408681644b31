"""Configuration parsing."""

from __future__ import annotations

import pytest

from runtime.config import ConfigurationError, Settings


def test_snapshot_intervals_are_parsed_per_aggregate_type() -> None:
    settings = Settings(snapshot_every="User=100, Account=25")
    assert settings.snapshot_intervals() == {"User": 100, "Account": 25}


@pytest.mark.parametrize("value", ["User", "User=0", "User=x", "=5"])
def test_malformed_snapshot_intervals_are_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigurationError):
        Settings(snapshot_every=value).snapshot_intervals()
