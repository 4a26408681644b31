"""The relay: publishes every stored event to Kafka, moving its checkpoint after the ack."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar, runtime_checkable

from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.following import FollowInput, Pacing, follow
from adapters import broker_loss, checkpoints, relay_ledger
from adapters.broker_loss import Loss, TopicState
from adapters.kafka import KafkaEventPublisher, encode_event
from adapters.read_ahead import ReadAhead
from adapters.relay_checkpoint import RELAY_CHECKPOINT
from adapters.relay_ledger import Ledger, PartitionAck
from domain.event_store import EncodedPage, EventStore

OUTAGE_PAUSE_SECONDS = 0.5
BROKER_CHECK_SECONDS = 1.0
"""How often the relay asks the broker whether it still holds what it acknowledged."""
PRUNE_EVERY_PAGES = 16
"""Pages published between two prunings of the relay's acknowledgement ledger: it holds at
most relay_ledger.KEPT_PAGES + 1 + this many rows per partition."""
READ_WAIT_SECONDS = 0.5
"""How long a read waits for new events when the relay has caught up."""

log = logging.getLogger(__name__)
T = TypeVar("T")


@runtime_checkable
class EncodedReader(Protocol):
    """A store that reads pages with their payloads as stored JSON (PostgresEventStore)."""

    async def read_all_encoded(
        self, after_position: int, limit: int, wait_seconds: float = 1.0
    ) -> EncodedPage: ...


def encoded_pages(store: EventStore, limit: int) -> Callable[[int, float], Awaitable[EncodedPage]]:
    """How the relay reads a page: encoded by the store if it can, else encoded here."""
    if isinstance(store, EncodedReader):
        reader = store

        async def read_encoded(position: int, wait: float) -> EncodedPage:
            return await reader.read_all_encoded(position, limit, wait_seconds=wait)

        return read_encoded

    async def read_and_encode(position: int, wait: float) -> EncodedPage:
        page = await store.read_all(position, limit, wait_seconds=wait)
        return EncodedPage([encode_event(e) for e in page.events], page.next_position)

    return read_and_encode


Sent = tuple[EncodedPage, list[PartitionAck]]
"""A page and what the broker acknowledged of it."""
Verdict = tuple[TopicState, Loss | None]
"""What the broker answered to a check, and what it lost of what it acknowledged before."""


class RelayActivities:
    """Activities of the relay singleton."""

    def __init__(
        self,
        engine: AsyncEngine,
        store: EventStore,
        database_url: str,
        publisher: Callable[[], KafkaEventPublisher],
        batch_size: int = 1000,
        checkpoint: str = RELAY_CHECKPOINT,
        coalesce_seconds: float = 0.0,
    ) -> None:
        self._engine = engine
        self._store = store
        self._database_url = database_url
        self._publisher = publisher
        self._batch_size = batch_size
        self._checkpoint = checkpoint
        # A call that moved the checkpoint by less than a page published a page that was
        # not full, unless it published several beside a broker check: then it ends on one
        # that was not full either (see `_publish_batch`).
        self._pacing = Pacing(page_size=batch_size, coalesce_seconds=coalesce_seconds)
        self._position: int | None = None
        self._ledger: Ledger | None = None
        self._next_check = 0.0
        # A check before the next page, not beside it: at the start of a run, after an
        # outage, after a recovery that found the checkpoint moved.
        self._check_first = True
        # The routine check, beside the pages published meanwhile: (the ledger's generation
        # when it started, the check). Its verdict counts only if the ledger was not read
        # again since (a recovery, a checkpoint moved): then the relay checks again.
        self._checking: tuple[int, asyncio.Task[Verdict | None]] | None = None
        self._generation = 0
        self._pages_since_prune = 0
        # The ledger's pruning, in a transaction of its own while a page is published.
        self._pruning: asyncio.Task[None] | None = None
        # The read of the next page overlaps the publish of the current one.
        read = encoded_pages(store, batch_size)
        self._pages: ReadAhead[EncodedPage] = ReadAhead(
            lambda position, wait: _coroutine(read(position, wait)),
            lambda _, page: len(page.events) >= batch_size,
        )
        # The publish of the next page, started once the broker acknowledged the current
        # one, while its checkpoint commits: (where it starts, the publish).
        self._ahead: tuple[int, asyncio.Task[Sent]] | None = None

    @activity.defn
    async def relay_events(self, params: FollowInput) -> int:
        """Publish events in global order until the run time passes; returns how many."""
        publisher = self._publisher()
        self._position = None
        self._check_first = True
        ended = False
        try:
            await publisher.start()
            moved = await follow(
                lambda: self.publish_batch(publisher),
                self._database_url,
                params.run_seconds,
                fence=self._checkpoint,
                pacing=self._pacing,
            )
            ended = True
            return moved
        finally:
            if not ended:
                # Cancelled, fence lost, failed: what the producer holds is unacknowledged,
                # so its checkpoint did not move; sent now, it could land after what
                # another instance publishes meanwhile from that checkpoint. Dropped.
                publisher.abort()
            # A publish_batch leaves nothing running; this drops a page published ahead
            # whose checkpoint did not move (the next run publishes it again).
            await self._stop_ahead()
            await self._stop_pruning()
            await self._stop_check()
            await self._pages.stop()
            await publisher.stop()

    async def publish_batch(self, publisher: KafkaEventPublisher) -> int:
        """Publish the next batch (the next few while a broker check runs beside them);
        returns how far the checkpoint moved (negative: back).

        A broker outage is not an error of the relay: the batch stays unacknowledged, the
        checkpoint stays put, and the next call publishes the same events again (whatever
        part of them reached the broker arrives twice, with the same ce_id, still in order).
        A broker that lost events it had acknowledged is noticed, by a check (its log ends
        below what it acknowledged, its cluster changed, the topic is gone) or by the ack of
        a batch (landing below that end); the relay then goes back to the first lost
        position and publishes again from there.

        Nothing a call starts outlives it: the publish of the next page started ahead has
        ended when it returns (its result waits for the next call), and is cancelled and
        waited for when it raises or is cancelled. The ledger's pruning and the broker
        check started by a call have ended by then too.

        The relay's work is fenced (see `activities.following.fenced`), and a fence lost
        cancels that work, waiting for it to unwind for the fence's margin at most while
        another instance may soon publish from the checkpoint. So a cancelled call aborts
        `publisher` (`KafkaEventPublisher.abort`) the moment the cancellation reaches it,
        before anything else of its unwinding, whatever that waits on: from then on nothing
        of the relay's is sent to the broker, neither what the producer still held nor a
        retry of a request under way; only a request already written to a connection may
        still be applied by the broker. What was not acknowledged is published again from
        the checkpoint. The publisher is of no use afterwards: the run ends with the call.

        The broker is checked about once a second. The routine check runs beside the pages
        published meanwhile (a call publishes pages until it answered, then acts on it), so
        events appended meanwhile do not wait for the broker's answer; a check at the start
        of a run or after an outage runs before the next page, as a loss is likeliest then.
        """
        # In a task of its own, so the cancellation reaches this call at once, not only once
        # whatever the batch waits on (a database that does not answer) let go.
        batch = asyncio.create_task(self._settled_batch(publisher))
        try:
            await asyncio.wait({batch})
        except asyncio.CancelledError:
            publisher.abort()
            await _cancelled(batch)
            raise
        return batch.result()

    async def _settled_batch(self, publisher: KafkaEventPublisher) -> int:
        """`publish_batch`, leaving nothing of it running when it returns or raises."""
        try:
            moved = await self._publish_batch(publisher)
            await self._end_pruning()
            if self._ahead is not None:
                await asyncio.wait({self._ahead[1]})
        except BaseException:
            await self._stop_ahead()
            await self._stop_pruning()
            await self._stop_check()
            raise
        return moved

    async def _publish_batch(self, publisher: KafkaEventPublisher) -> int:
        loop = asyncio.get_running_loop()
        due = self._check_first or loop.time() >= self._next_check
        if due:
            # Now and then read the checkpoint again too: an operator may have rewound it.
            self._position = None
        position = await self._current_position()
        if due and self._check_first:
            self._check_first = False
            verdict = await self._inspect(publisher, (await self._current_ledger()).snapshot())
            self._next_check = loop.time() + BROKER_CHECK_SECONDS
            moved = await self._act_on(publisher, verdict)
            if moved is not None:
                return moved
        elif due:
            await self._start_check(publisher)
        moved = 0
        while True:
            step = await self._publish_page(publisher, position)
            moved += step
            if self._checking is None:
                return moved
            if step > 0 and not self._checking[1].done():
                # The check goes on: publish the next page meanwhile.
                position = await self._current_position()
                continue
            recovered = await self._end_check(publisher)
            return moved + (recovered or 0)

    async def _publish_page(self, publisher: KafkaEventPublisher, position: int) -> int:
        """Publish the page after `position` and move the checkpoint past it."""
        if self._pages_since_prune + 1 >= PRUNE_EVERY_PAGES:
            # Fold the ledger's older rows meanwhile, in a transaction of its own: not in
            # the page's, where every event appended meanwhile would wait for it.
            self._start_pruning()
        try:
            page, acks = await self._sent_from(publisher, position)
        except KafkaError as error:
            log.warning("relay: broker did not acknowledge, retrying: %r", error)
            self._check_first = True
            await asyncio.sleep(OUTAGE_PAUSE_SECONDS)
            return 0
        if page.next_position == position:
            return 0
        ledger = await self._current_ledger()
        landed = {ack.partition: ack.base_offset for ack in acks}
        if any(offset < ledger.acked_ends.get(p, 0) for p, offset in landed.items()):
            # The page landed below what the broker acknowledged before: its log was cut.
            if self._checking is not None:
                # One look at the broker at a time; that check's verdict waits for the loop.
                await asyncio.wait({self._checking[1]})
            state = await publisher.inspect()
            loss = broker_loss.assess(ledger, state, landed)
            if loss is not None:
                return await self._recover(publisher, position, loss, state.cluster_id)
        if len(page.events) >= self._batch_size:
            # Every partition's batches of this page are acknowledged, so the next page's
            # may go out now, one after another as always; its checkpoint moves only after
            # this one's, in the next call.
            self._start_ahead(publisher, page.next_position)
        # The page's rows go in after the pruning's, never beside them.
        await self._end_pruning()
        try:
            async with self._engine.begin() as conn:
                await checkpoints.advance(conn, self._checkpoint, position, page.next_position)
                await relay_ledger.record(conn, self._checkpoint, acks)
        except checkpoints.CheckpointMoved:
            # Another relay, or an operator's rewind, moved it: follow it from the store.
            log.info("relay: checkpoint %s moved under the relay, reading it again", position)
            await self._settle_ahead()
            self._forget()
            return 0
        except BaseException:
            self._forget()
            raise
        ledger.acknowledge(acks)
        self._pages_since_prune += 1
        self._position = page.next_position
        return page.next_position - position

    async def _sent_from(self, publisher: KafkaEventPublisher, position: int) -> Sent:
        """The page after `position`, published: by the publish started ahead if it starts
        there, else read and published now. KafkaError if the broker did not acknowledge."""
        if self._ahead is not None and self._ahead[0] == position:
            task = self._ahead[1]
            await asyncio.wait({task})
            self._ahead = None
            return task.result()
        await self._settle_ahead()
        return await self._publish_from(publisher, position)

    async def _publish_from(self, publisher: KafkaEventPublisher, position: int) -> Sent:
        page = await self._pages.page(position, READ_WAIT_SECONDS)
        if page.next_position == position:
            return page, []
        return page, await publisher.publish_encoded(page.events)

    def _start_ahead(self, publisher: KafkaEventPublisher, position: int) -> None:
        self._ahead = (position, asyncio.create_task(self._publish_from(publisher, position)))

    async def _settle_ahead(self) -> None:
        """Let a publish started ahead end, unused: whatever it sent reaches the broker
        before anything sent after it (a recovery, a publish from another position), and is
        published again from the checkpoint, as after any unacknowledged publish."""
        if self._ahead is None:
            return
        # Kept until it ended: a cancellation meanwhile leaves it to `_stop_ahead`.
        task = self._ahead[1]
        await asyncio.wait({task})
        self._ahead = None
        if not task.cancelled():
            task.exception()  # dropped, as the page is published again

    async def _stop_ahead(self) -> None:
        """Cancel a publish started ahead and wait until it ended: whatever it handed the
        producer before is all of it that reaches the broker."""
        if self._ahead is not None:
            await _cancelled(self._ahead[1])
            self._ahead = None

    def _start_pruning(self) -> None:
        if self._pruning is None:
            self._pruning = asyncio.create_task(self._prune())

    async def _prune(self) -> None:
        async with self._engine.begin() as conn:
            await relay_ledger.prune(conn, self._checkpoint)

    async def _end_pruning(self) -> None:
        """Wait for the ledger's pruning to end; raises what it raised."""
        if self._pruning is None:
            return
        task = self._pruning
        await asyncio.wait({task})
        self._pruning = None
        task.result()
        self._pages_since_prune = 0

    async def _stop_pruning(self) -> None:
        if self._pruning is not None:
            await _cancelled(self._pruning)
            self._pruning = None

    async def _start_check(self, publisher: KafkaEventPublisher) -> None:
        """Start the routine check, comparing the broker with what it acknowledged so far."""
        snapshot = (await self._current_ledger()).snapshot()
        task = asyncio.create_task(self._inspect(publisher, snapshot))
        self._checking = (self._generation, task)

    async def _inspect(self, publisher: KafkaEventPublisher, ledger: Ledger) -> Verdict | None:
        """What the broker holds of what `ledger` says it acknowledged; None if it did not
        answer.

        `ledger` is as it was before the broker was asked: every acknowledgement in it came
        before the broker's answer, which must then show it. One recorded later (a page
        published beside the check) may lie past the ends the broker answered with, and is
        no evidence of a loss.
        """
        try:
            state = await publisher.inspect()
        except KafkaError as error:
            log.warning("relay: broker did not answer its check: %r", error)
            return None
        return state, broker_loss.assess(ledger, state)

    async def _end_check(self, publisher: KafkaEventPublisher) -> int | None:
        """Wait for the routine check and act on its verdict (see `_act_on`)."""
        assert self._checking is not None
        generation, task = self._checking
        # Kept until it ended: a cancellation meanwhile leaves it to `_stop_check`.
        await asyncio.wait({task})
        self._checking = None
        verdict = task.result()
        self._next_check = asyncio.get_running_loop().time() + BROKER_CHECK_SECONDS
        if generation != self._generation:
            # The ledger was read again meanwhile (a recovery, a checkpoint moved under the
            # relay): the verdict may be about what is gone. Check again from there.
            self._next_check = 0.0
            return None
        return await self._act_on(publisher, verdict)

    async def _stop_check(self) -> None:
        if self._checking is not None:
            await _cancelled(self._checking[1])
            self._checking = None

    async def _act_on(self, publisher: KafkaEventPublisher, verdict: Verdict | None) -> int | None:
        """Recover from a loss the check found, between two pages; None if nothing is lost.

        Pages published and checkpointed since the check started are no reason to doubt its
        verdict, nor is it a reason to doubt them: a page the broker put on a log it had cut
        landed below what it acknowledged before, and was noticed by its ack before its
        checkpoint moved; any other page's acknowledgement is in the ledger the recovery
        reads, so it goes back as far as the broker lost, those pages with it.
        """
        if verdict is None:
            return None
        state, loss = verdict
        if loss is not None:
            position = await self._current_position()
            return await self._recover(publisher, position, loss, state.cluster_id)
        if not state.listed:
            try:
                await publisher.create_topic()
            except KafkaError as error:
                log.warning("relay: broker did not answer its check: %r", error)
                return None
        ledger = await self._current_ledger()
        if ledger.cluster_id is None and state.cluster_id is not None:
            async with self._engine.begin() as conn:
                await relay_ledger.remember_cluster(conn, self._checkpoint, state.cluster_id)
            ledger.cluster_id = state.cluster_id
        return None

    async def _recover(
        self, publisher: KafkaEventPublisher, position: int, loss: Loss, cluster_id: str | None
    ) -> int:
        """Go back to the first position the broker lost; returns how far back (negative).

        If the broker lost everything it acknowledged (and only then), the topic is deleted
        and created empty, whatever the relay wrote since going with it, so the topic holds
        every event again in the order of the store.
        """
        await self._settle_ahead()
        # The ledger's rows change below: never beside its pruning.
        await self._end_pruning()
        ledger = await self._current_ledger()
        if loss.everything:
            log.warning("relay: deleting topic and publishing every event again: %s", loss.reason)
            await publisher.replace_topic()
        try:
            async with self._engine.begin() as conn:
                if loss.everything:
                    first = await relay_ledger.forget_all(conn, self._checkpoint)
                else:
                    first = await relay_ledger.first_lost_position(
                        conn, self._checkpoint, loss.survived
                    )
                # The checkpoint is the last position published: the one before the first lost.
                restart = min(max(first - 1, 0), position)
                await checkpoints.advance(conn, self._checkpoint, position, restart)
                await relay_ledger.record_recovery(conn, self._checkpoint, cluster_id, restart)
        except checkpoints.CheckpointMoved:
            # An operator's rewind (or another relay) came first: check again from there.
            self._check_first = True
            return 0
        finally:
            self._forget()
        log.warning(
            "relay: the broker lost acknowledged events (%s; log ends %s, acknowledged %s);"
            " publishing again after position %d (was at %d)",
            loss.reason,
            loss.survived,
            ledger.acked_ends,
            restart,
            position,
        )
        return restart - position

    def _forget(self) -> None:
        """Read checkpoint and ledger from the store again before the next batch."""
        self._position = None
        self._ledger = None
        self._generation += 1

    async def _current_ledger(self) -> Ledger:
        if self._ledger is None:
            async with self._engine.begin() as conn:
                self._ledger = await relay_ledger.load(conn, self._checkpoint)
        return self._ledger

    async def _current_position(self) -> int:
        """The checkpoint, read once and then followed in memory.

        Only this relay moves it; if another one did (two workers briefly both running the
        singleton, or an operator's rewind), `advance` fails on the stale position and the
        next batch reads it again.
        """
        if self._position is None:
            async with self._engine.begin() as conn:
                self._position = await checkpoints.load(conn, self._checkpoint)
        return self._position


async def _cancelled(task: asyncio.Task[T]) -> None:
    """Cancel `task` and wait until it ended, even if the caller is cancelled meanwhile
    (then raising CancelledError after); its result or error is dropped."""
    task.cancel()
    interrupted = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            interrupted = True
    if not task.cancelled():
        task.exception()  # retrieved, so it is not logged as never retrieved
    if interrupted:
        raise asyncio.CancelledError


async def _coroutine(awaitable: Awaitable[EncodedPage]) -> EncodedPage:
    return await awaitable
