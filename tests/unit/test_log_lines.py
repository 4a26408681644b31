"""JSON log lines name the trace, the correlation id and the workflow id where known."""

from __future__ import annotations

import json
import logging
import sys

from opentelemetry.sdk.trace import TracerProvider

from adapters.correlation import correlated
from runtime.log_format import JsonLogFormatter, log_handler


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("sagaline.test", logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def line(made: logging.LogRecord) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(JsonLogFormatter().format(made))
    return parsed


def test_a_line_outside_any_context_has_only_the_basics() -> None:
    parsed = line(record("hello %s", "world"))
    assert parsed.keys() == {"time", "level", "logger", "message"}
    assert parsed["message"] == "hello world"
    assert parsed["level"] == "WARNING"
    assert parsed["logger"] == "sagaline.test"


def test_a_line_within_a_span_names_its_trace_and_span() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        parsed = line(record())
    context = span.get_span_context()
    assert parsed["trace_id"] == f"{context.trace_id:032x}"
    assert parsed["span_id"] == f"{context.span_id:016x}"


def test_a_line_of_a_command_names_its_correlation_and_workflow_ids() -> None:
    with correlated("cmd-1", "transfer/t-1"):
        parsed = line(record())
    assert parsed["correlation_id"] == "cmd-1"
    assert parsed["workflow_id"] == "transfer/t-1"
    assert "correlation_id" not in line(record())


def test_a_line_from_temporals_loggers_names_the_workflow_they_know() -> None:
    activity = {"workflow_id": "register-user/c-9", "activity_type": "register_user"}
    with correlated("c-9"):
        parsed = line(record(temporal_activity=activity))
    assert parsed["workflow_id"] == "register-user/c-9"
    assert parsed["correlation_id"] == "c-9"
    assert line(record(temporal_workflow={"workflow_id": "relay"}))["workflow_id"] == "relay"


def test_a_traceback_is_kept_in_one_line() -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        made = logging.LogRecord(
            "sagaline.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    formatted = JsonLogFormatter().format(made)
    assert "\n" not in formatted
    assert "ValueError: broken" in json.loads(formatted)["exception"]


def test_the_log_format_setting_picks_the_formatter() -> None:
    assert isinstance(log_handler("json").formatter, JsonLogFormatter)
    assert not isinstance(log_handler("text").formatter, JsonLogFormatter)
