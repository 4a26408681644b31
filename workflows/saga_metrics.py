"""What a saga reports for metrics, from workflow code, through the worker's extern function.

Reports are skipped while a workflow replays its history, so each happens once per run of
the code that made it; a worker without the metrics interceptor ignores them.
"""

from __future__ import annotations

from enum import StrEnum

from temporalio import workflow

SAGA_METRICS_EXTERN = "sagaline_saga_metric"
"""The extern function's name, registered by adapters.saga_metrics.SagaMetricsInterceptor."""


class SagaReport(StrEnum):
    STARTED = "started"
    FINISHED = "finished"
    """detail: the saga's final status (COMPLETED, COMPENSATED)."""
    COMPENSATION_SUCCEEDED = "compensation_succeeded"
    """detail: the step whose compensation ran."""
    COMPENSATION_FAILED = "compensation_failed"
    """detail: the step whose compensation failed, after all its retries."""
    PARKED = "parked"


def report(kind: SagaReport, saga_type: str, detail: str = "") -> None:
    """Tell the worker's metrics about a saga, unless the workflow is replaying."""
    if workflow.unsafe.is_replaying():
        return
    record = workflow.extern_functions().get(SAGA_METRICS_EXTERN)
    if record is not None:
        record(kind.value, saga_type, detail)
