"""Whether the broker lost events it acknowledged to the relay, on the broker's own word.

The relay deletes its topic only when the broker itself shows it lost every acknowledged
event: its cluster id is not the one the relay published to, it lists no such topic, or
every partition's log ends before what it acknowledged. An answer the broker did not give
(a partition it did not report on, a cluster id it did not send) is never evidence: a real
Kafka in the middle of a leader election must not have its topic deleted under it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from adapters.relay_ledger import Ledger


@dataclass(frozen=True)
class TopicState:
    """What the broker answered about the topic: its cluster, whether it lists the topic,
    and the end of the log of each partition it reported on."""

    cluster_id: str | None
    listed: bool = True
    ends: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Loss:
    """What the broker lost: per partition, where its log ends now.

    `everything` is the evidence that it holds none of what it acknowledged, the one case in
    which the relay deletes the topic and publishes every event again in the store's order.
    """

    survived: dict[int, int]
    everything: bool
    reason: str


def assess(
    ledger: Ledger, state: TopicState, landed: Mapping[int, int] | None = None
) -> Loss | None:
    """What the broker lost of what it acknowledged; None if it shows no loss.

    `landed` maps a partition to the offset a batch was just acknowledged at, which is
    evidence of a cut log when it lies below the acknowledged end. A log's end is compared
    with the first offset of the last acknowledged batch rather than the acknowledged end:
    Tansu lists a log's end as one past the first offset of its last batch.
    """
    acknowledged = ledger.last_batches
    if (
        ledger.cluster_id is not None
        and state.cluster_id is not None
        and state.cluster_id != ledger.cluster_id
    ):
        reason = f"its cluster id changed from {ledger.cluster_id} to {state.cluster_id}"
        return Loss(dict.fromkeys(acknowledged, 0), True, reason)
    if not acknowledged:
        return None
    if not state.listed:
        return Loss(dict.fromkeys(acknowledged, 0), True, "it no longer lists the topic")
    survived = {
        partition: state.ends[partition]
        for partition, last in acknowledged.items()
        if partition in state.ends and state.ends[partition] <= last
    }
    for partition, offset in (landed or {}).items():
        if offset < ledger.acked_ends.get(partition, 0):
            survived[partition] = min(offset, survived.get(partition, offset))
    if not survived:
        return None
    everything = all(survived.get(partition) == 0 for partition in acknowledged)
    reason = "every partition's log came back empty" if everything else "its log was cut"
    return Loss(survived, everything, reason)
