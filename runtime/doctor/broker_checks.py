"""Checks on the Kafka broker: reachable, the event topic has its partitions, dead letters."""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from runtime.doctor.findings import (
    Finding,
    bounded,
    client_timeout_ms,
    failure_text,
    not_checked,
    ok,
    problem,
)

BROKER = "broker"
TOPIC = "topic"
DEAD_LETTERS = "dead letters"


class BrokerExamination:
    """The broker checks over one admin connection, each answer awaited at most `within` s."""

    def __init__(self, bootstrap: str, within: float) -> None:
        self.bootstrap = bootstrap
        self.within = within
        # Past our own bound, so a broker that hangs is told as such, not as the client's error.
        self._timeout_ms = client_timeout_ms(within)
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=self._timeout_ms
        )

    async def run(self, topic: str, partitions: int, dead_letter_topic: str) -> list[Finding]:
        """Reachability, the event topic's partitions and the dead-letter topic's size."""
        try:
            try:
                topics = await bounded(self._topics(), self.within)
            except Exception as error:  # any failure to reach the broker is the finding
                because = "the broker is not reachable"
                return [
                    problem(
                        BROKER,
                        f"not reachable at {self.bootstrap} ({failure_text(error, self.within)})",
                        "Start the broker, or point SAGALINE_KAFKA_BOOTSTRAP at it",
                    ),
                    not_checked(TOPIC, because),
                    not_checked(DEAD_LETTERS, because),
                ]
            return [
                ok(BROKER, f"reachable at {self.bootstrap}"),
                await self._topic(topics, topic, partitions),
                await self._dead_letters(topics, dead_letter_topic),
            ]
        finally:
            with contextlib.suppress(Exception):  # a broker that hangs may not answer a close
                await bounded(self._admin.close(), self.within)

    async def _topics(self) -> set[str]:
        await self._admin.start()
        return set(await self._admin.list_topics())

    async def _topic(self, topics: set[str], topic: str, partitions: int) -> Finding:
        if topic not in topics:
            return problem(
                TOPIC,
                f"{topic} does not exist",
                "The relay creates it when it starts: start the followers (`sagaline followers`)",
            )
        try:
            found = len(await bounded(self._partitions(topic), self.within))
        except Exception as error:  # reported, not raised
            return problem(TOPIC, f"{topic} was not described ({self._failure(error)})", "")
        if found != partitions:
            return problem(
                TOPIC,
                f"{topic} has {found} partitions, SAGALINE_KAFKA_PARTITIONS says {partitions}",
                "Set SAGALINE_KAFKA_PARTITIONS to the topic's count, or recreate the topic",
            )
        return ok(TOPIC, f"{topic} has its {partitions} partitions")

    async def _dead_letters(self, topics: set[str], dead_letter_topic: str) -> Finding:
        if dead_letter_topic not in topics:
            return ok(DEAD_LETTERS, f"none ({dead_letter_topic} not created yet)")
        try:
            size = await bounded(self._size(dead_letter_topic), self.within)
        except Exception as error:  # reported, not raised
            return problem(
                DEAD_LETTERS,
                f"the size of {dead_letter_topic} was not read ({self._failure(error)})",
                "",
            )
        if size:
            return problem(
                DEAD_LETTERS,
                f"{size} message{'s' if size != 1 else ''} in {dead_letter_topic}",
                "Read them (their headers carry the error), fix the cause, republish what matters",
            )
        return ok(DEAD_LETTERS, f"none in {dead_letter_topic}")

    async def _partitions(self, topic: str) -> list[int]:
        described = await self._admin.describe_topics([topic])
        return sorted(
            int(partition["partition"])
            for found in described
            if found["topic"] == topic
            for partition in found["partitions"]
        )

    async def _size(self, topic: str) -> int:
        """Messages the topic holds now: per partition, the log's end minus its beginning."""
        partitions = [TopicPartition(topic, p) for p in await self._partitions(topic)]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, request_timeout_ms=self._timeout_ms
        )
        await consumer.start()
        try:
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.beginning_offsets(partitions)
        finally:
            await consumer.stop()
        return sum(max(int(ends[tp]) - int(starts[tp]), 0) for tp in partitions)

    def _failure(self, error: BaseException) -> str:
        return failure_text(error, self.within)
