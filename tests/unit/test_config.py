"""Configuration parsing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from activities.command_handling import FAILED_ATTEMPTS
from runtime.config import ConfigurationError, Settings


def test_snapshot_intervals_are_parsed_per_aggregate_type() -> None:
    settings = Settings(snapshot_every="User=100, Account=25")
    assert settings.snapshot_intervals() == {"User": 100, "Account": 25}


@pytest.mark.parametrize("value", ["User", "User=0", "User=x", "=5"])
def test_malformed_snapshot_intervals_are_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigurationError):
        Settings(snapshot_every=value).snapshot_intervals()


def test_the_followers_task_queue_is_derived_from_the_commands_queue_unless_set() -> None:
    assert Settings().followers_task_queue() == "sagaline-followers"
    assert Settings(temporal_task_queue="bank").followers_task_queue() == "bank-followers"
    named = Settings(temporal_task_queue="bank", temporal_followers_task_queue="bank-cqrs")
    assert named.followers_task_queue() == "bank-cqrs"


def test_the_followers_task_queue_is_read_from_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SAGALINE_TEMPORAL_FOLLOWERS_TASK_QUEUE", "followers-2")
    assert Settings().followers_task_queue() == "followers-2"


def test_one_task_queue_for_the_sagas_and_the_followers_is_refused() -> None:
    with pytest.raises(ValidationError, match="must differ from SAGALINE_TEMPORAL_TASK_QUEUE"):
        Settings(temporal_task_queue="bank", temporal_followers_task_queue="bank")


def test_the_worker_and_the_followers_serve_metrics_on_ports_of_their_own() -> None:
    settings = Settings(worker_metrics_host="0.0.0.0")
    worker, followers = settings.process_metrics("worker"), settings.process_metrics("followers")
    assert worker.ports() == [
        (9464, "SAGALINE_WORKER_METRICS_PORT"),
        (9465, "SAGALINE_WORKER_TEMPORAL_METRICS_PORT"),
    ]
    assert followers.ports() == [
        (9466, "SAGALINE_FOLLOWERS_METRICS_PORT"),
        (9467, "SAGALINE_FOLLOWERS_TEMPORAL_METRICS_PORT"),
    ]
    assert followers.host == "0.0.0.0"
    quiet = Settings(followers_metrics_port=0).process_metrics("followers")
    assert (quiet.serves(), quiet.serves_temporal()) == (False, True)
    assert Settings(metrics=False).process_metrics("followers").ports() == []


def test_commands_are_tried_as_often_as_the_activities_default_unless_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().command_attempts == FAILED_ATTEMPTS
    monkeypatch.setenv("SAGALINE_COMMAND_ATTEMPTS", "2")
    assert Settings().command_attempts == 2


@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_a_command_is_tried_at_least_once(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SAGALINE_COMMAND_ATTEMPTS", value)
    with pytest.raises(ValidationError, match="command_attempts"):
        Settings()


def test_the_workflow_task_timeout_is_temporals_default_unless_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().workflow_task_timeout_seconds == 10
    monkeypatch.setenv("SAGALINE_WORKFLOW_TASK_TIMEOUT_SECONDS", "3")
    assert Settings().workflow_task_timeout_seconds == 3


@pytest.mark.parametrize("value", ["0", "0.5", "121"])
def test_a_workflow_task_timeout_outside_temporals_range_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SAGALINE_WORKFLOW_TASK_TIMEOUT_SECONDS", value)
    with pytest.raises(ValidationError, match="workflow_task_timeout_seconds"):
        Settings()
