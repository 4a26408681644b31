"""Metrics of the event topic's consumers: messages handled, dead letters, lag per partition."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge


class ConsumerMetrics:
    """The consumer metric families of one process; every consumer reports under its name."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "sagaline_consumer_messages",
            "Messages a consumer handled, by outcome (processed; duplicate: seen before;"
            " skipped: of a type it does not watch, passed over unread).",
            ["consumer", "outcome"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "sagaline_consumer_dead_letters",
            "Messages a consumer copied to the dead-letter topic after failing.",
            ["consumer"],
            registry=registry,
        )
        self.lag = Gauge(
            "sagaline_consumer_lag_messages",
            "Messages of a partition past the consumer's position (its assigned partitions).",
            ["consumer", "partition"],
            registry=registry,
        )
        self._lag_partitions: dict[str, set[int]] = {}

    def handled(self, consumer: str, processed: int, duplicates: int) -> None:
        if processed:
            self.messages.labels(consumer, "processed").inc(processed)
        if duplicates:
            self.messages.labels(consumer, "duplicate").inc(duplicates)

    def skipped(self, consumer: str, messages: int) -> None:
        """Messages passed over unread: of types the consumer's handler does not watch."""
        if messages:
            self.messages.labels(consumer, "skipped").inc(messages)

    def dead_lettered(self, consumer: str) -> None:
        self.dead_letters.labels(consumer).inc()

    def set_lag(self, consumer: str, lag_by_partition: Mapping[int, int]) -> None:
        """The lag of every partition the consumer holds; partitions it gave up are dropped."""
        known = self._lag_partitions.setdefault(consumer, set())
        for partition in known - set(lag_by_partition):
            self.lag.remove(consumer, str(partition))
        for partition, lag in lag_by_partition.items():
            self.lag.labels(consumer, str(partition)).set(lag)
        self._lag_partitions[consumer] = set(lag_by_partition)
