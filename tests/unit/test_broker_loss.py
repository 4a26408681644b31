"""When the relay may decide the broker lost acknowledged events, and delete its topic."""

from __future__ import annotations

from adapters.broker_loss import Loss, TopicState, assess
from adapters.relay_ledger import Ledger, PartitionAck

CLUSTER = "cluster-a"


def ledger_with(ends: dict[int, int]) -> Ledger:
    """A ledger whose partitions were acknowledged up to `ends`, in batches of 10."""
    ledger = Ledger(CLUSTER)
    ledger.acknowledge(
        [PartitionAck(partition, 0, end, end - 10, 1) for partition, end in ends.items()]
    )
    return ledger


def test_a_broker_holding_what_it_acknowledged_lost_nothing() -> None:
    ledger = ledger_with({0: 40, 1: 20})
    assert assess(ledger, TopicState(CLUSTER, True, {0: 40, 1: 25})) is None


def test_tansu_listing_its_end_one_past_the_last_batch_start_is_no_loss() -> None:
    ledger = ledger_with({0: 40})
    assert assess(ledger, TopicState(CLUSTER, True, {0: 31})) is None
    assert assess(ledger, TopicState(CLUSTER, True, {0: 30})) == Loss(
        {0: 30}, False, "its log was cut"
    )


def test_partitions_the_broker_did_not_report_on_are_no_evidence() -> None:
    ledger = ledger_with({0: 40, 1: 20, 2: 30})
    assert assess(ledger, TopicState(CLUSTER, True, {})) is None
    assert assess(ledger, TopicState(CLUSTER, True, {0: 40})) is None


def test_a_cluster_id_the_broker_did_not_send_is_no_evidence() -> None:
    assert assess(ledger_with({0: 40}), TopicState(None, True, {0: 40})) is None


def test_a_changed_cluster_id_means_everything_was_lost() -> None:
    loss = assess(ledger_with({0: 40, 1: 20}), TopicState("cluster-b", True, {0: 40, 1: 20}))
    assert loss is not None
    assert loss.everything
    assert loss.survived == {0: 0, 1: 0}


def test_a_topic_no_longer_listed_lost_everything_acknowledged() -> None:
    loss = assess(ledger_with({0: 40, 1: 20}), TopicState(CLUSTER, False))
    assert loss is not None
    assert loss.everything


def test_a_topic_not_listed_before_anything_was_acknowledged_lost_nothing() -> None:
    assert assess(Ledger(CLUSTER), TopicState(CLUSTER, False)) is None


def test_every_partition_back_at_zero_is_everything_but_one_cut_partition_is_not() -> None:
    ledger = ledger_with({0: 40, 1: 20})
    everything = assess(ledger, TopicState(CLUSTER, True, {0: 0, 1: 0}))
    assert everything is not None
    assert everything.everything
    cut = assess(ledger, TopicState(CLUSTER, True, {0: 0, 1: 20}))
    assert cut == Loss({0: 0}, False, "its log was cut")


def test_a_batch_landing_below_the_acknowledged_end_shows_a_cut() -> None:
    ledger = ledger_with({0: 40, 1: 20})
    state = TopicState(CLUSTER, True, {0: 40, 1: 20})
    assert assess(ledger, state, landed={0: 40, 1: 20}) is None
    assert assess(ledger, state, landed={0: 12}) == Loss({0: 12}, False, "its log was cut")
    # Landed at zero where the other partitions went unreported: not enough to delete.
    partial = assess(ledger, TopicState(CLUSTER, True, {}), landed={0: 0})
    assert partial == Loss({0: 0}, False, "its log was cut")
