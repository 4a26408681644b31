"""Saga metrics of a worker: counters fed from workflow code (workflows.saga_metrics) through
an extern function that a worker interceptor registers."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from temporalio.worker import Interceptor, WorkflowInboundInterceptor, WorkflowInterceptorClassInput

from workflows.saga_metrics import SAGA_METRICS_EXTERN, SagaReport


class SagaMetrics:
    """Saga counters of one worker process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "sagaline_sagas_started",
            "Sagas started, by saga type.",
            ["saga_type"],
            registry=registry,
        )
        self.finished = Counter(
            "sagaline_sagas_finished",
            "Sagas finished, by saga type and outcome (completed, compensated).",
            ["saga_type", "outcome"],
            registry=registry,
        )
        self.compensations = Counter(
            "sagaline_saga_compensations",
            "Compensations run, by saga type, step and outcome (succeeded, failed after"
            " all its retries).",
            ["saga_type", "step", "outcome"],
            registry=registry,
        )
        self.parked = Counter(
            "sagaline_sagas_parked",
            "Times a saga parked as NEEDS_ATTENTION for an operator, by saga type.",
            ["saga_type"],
            registry=registry,
        )

    def record(self, kind: str, saga_type: str, detail: str) -> None:
        """One report of workflows.saga_metrics."""
        if kind == SagaReport.STARTED:
            self.started.labels(saga_type).inc()
        elif kind == SagaReport.FINISHED:
            self.finished.labels(saga_type, detail.lower()).inc()
        elif kind == SagaReport.COMPENSATION_SUCCEEDED:
            self.compensations.labels(saga_type, detail, "succeeded").inc()
        elif kind == SagaReport.COMPENSATION_FAILED:
            self.compensations.labels(saga_type, detail, "failed").inc()
        elif kind == SagaReport.PARKED:
            self.parked.labels(saga_type).inc()


class SagaMetricsInterceptor(Interceptor):
    """Gives workflows the extern function their saga reports go through."""

    def __init__(self, metrics: SagaMetrics) -> None:
        self._metrics = metrics

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        input.unsafe_extern_functions[SAGA_METRICS_EXTERN] = self._metrics.record
        return None
