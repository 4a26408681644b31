"""How log lines look: text for a terminal, or JSON with the ids that tie a line to a trace,
a command and a workflow."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from temporalio import activity

from adapters import correlation

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Where Temporal's activity and workflow loggers put what they know of the run.
TEMPORAL_EXTRAS = ("temporal_activity", "temporal_workflow")


def log_handler(log_format: str) -> logging.Handler:
    """A handler writing to stderr in the format `SAGALINE_LOG_FORMAT` names."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonLogFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    return handler


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and where known the trace id and
    span id, the correlation id and the workflow id; a traceback as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = f"{span.trace_id:032x}"
            line["span_id"] = f"{span.span_id:016x}"
        correlation_id = correlation.correlation_id()
        if correlation_id is not None:
            line["correlation_id"] = correlation_id
        workflow_id = correlation.workflow_id() or _temporal_workflow_id(record)
        if workflow_id is not None:
            line["workflow_id"] = workflow_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _temporal_workflow_id(record: logging.LogRecord) -> str | None:
    for extra in TEMPORAL_EXTRAS:
        details = getattr(record, extra, None)
        if isinstance(details, dict) and details.get("workflow_id"):
            return str(details["workflow_id"])
    if activity.in_activity():
        return activity.info().workflow_id
    return None
