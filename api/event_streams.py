"""One SSE client's view of a stream: the history after its Last-Event-ID, then the live events.

The route subscribes to the hub (and a new tenant reader takes its anchor) *before* the response
starts, so an event recorded once the client has the response's headers is in the stream; and it
subscribes *before* the history is read, so an event published after the
history was read reaches its queue, and one published before is in the history: nothing falls
between the two; the cursor (a seq, or `domain.tenant_event_cursor`) takes each event once. A
seq beyond the next one (a batch the hub did not hand over) is filled from the database first,
so a session's events always arrive 1, 2, 3, ... DB reads run in worker threads.

Each generator yields `(sse_id, event)`, or None on the hub's keepalive tick.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import suppress

from anyio import to_thread

from api.live_event_hub import LiveEventHub, Subscription
from domain.errors import NotFound
from domain.events import SessionEvent
from domain.tenant_event_cursor import TenantEventCursor
from services.live_event_log import PAGE

Delivery = tuple[str, SessionEvent] | None
PRUNE_ABOVE = 32  # listed sessions before a reader's cursor moves its anchor to the horizon


async def session_events(
    hub: LiveEventHub,
    subscription: Subscription,
    tenant_id: str,
    session_id: str,
    after_seq: int,
) -> AsyncIterator[Delivery]:
    """Owns `subscription` (`hub.subscribe_session`, taken before this starts)."""
    last = after_seq

    async def recorded(after: int, upto: int | None = None) -> list[SessionEvent]:
        fresh: list[SessionEvent] = []
        while upto is None or after < upto:
            page = await to_thread.run_sync(hub.log.session_events, tenant_id, session_id, after)
            fresh.extend(e for e in page if upto is None or e.seq < upto)
            if len(page) < PAGE:
                break
            after = page[-1].seq
        return fresh

    try:
        batch: list[SessionEvent] | None = await recorded(last)
        while True:
            if batch is None:
                yield None
            else:
                for event in batch:
                    if event.seq <= last:
                        continue
                    missed = await recorded(last, event.seq) if event.seq > last + 1 else []
                    for taken in [*missed, event]:
                        last = taken.seq
                        yield str(taken.seq), taken
            batch = await subscription.next()
            if subscription.take_overflow():
                batch = await recorded(last)
    finally:
        hub.unsubscribe(subscription)


async def tenant_events(
    hub: LiveEventHub,
    subscription: Subscription,
    tenant_id: str,
    cursor: TenantEventCursor,
) -> AsyncIterator[Delivery]:
    """Owns `subscription` (`hub.subscribe_tenant`, taken before `cursor` was made)."""

    async def recorded() -> list[SessionEvent]:
        """The record after the anchor, in row id order: for a session not listed, every such
        event is one the reader lacks (its seqs follow its row ids)."""
        taken: list[SessionEvent] = []
        after = cursor.anchor
        while True:
            page = await to_thread.run_sync(hub.log.tenant_events, tenant_id, after)
            for _, event in page:
                listed = cursor.listed(event.session_id)
                if listed is None or event.seq > listed:
                    taken.append(event)
            if len(page) < PAGE:
                return taken
            after = page[-1][0]

    async def taken_live(events: Iterable[SessionEvent]) -> list[SessionEvent]:
        taken: list[SessionEvent] = []
        last_of: dict[str, int] = {}
        for event in events:
            session = event.session_id
            last = last_of.get(session, cursor.listed(session))
            if last is None:
                last = await to_thread.run_sync(hub.baseline, tenant_id, session, cursor.anchor)
            if event.seq <= last:
                continue
            if event.seq > last + 1:  # fill the gap from the record, in order
                with suppress(NotFound):  # deleted meanwhile: its event is all there is
                    taken.extend(
                        await to_thread.run_sync(
                            hub.log.session_events, tenant_id, session, last, event.seq - last - 1
                        )
                    )
            taken.append(event)
            last_of[session] = event.seq
        return taken

    try:
        fresh = await recorded()
        while True:
            for event in fresh:
                # The id after each event, so that a reader cut off between two resumes right.
                cursor.delivered(event.session_id, event.seq)
                yield cursor.format(), event
            batch = await subscription.next()
            if subscription.take_overflow():
                fresh = await recorded()
            elif batch is None:
                fresh = []
                yield None
            else:
                fresh = await taken_live(batch)
            await _advance(hub, tenant_id, cursor)
    finally:
        hub.unsubscribe(subscription)


async def _advance(hub: LiveEventHub, tenant_id: str, cursor: TenantEventCursor) -> None:
    """Keep the id short: move the anchor to the horizon once many sessions are listed."""
    horizon = hub.tenant_horizon(tenant_id)
    if len(cursor.seqs) <= PRUNE_ABOVE or horizon is None or horizon <= cursor.anchor:
        return
    seqs = await to_thread.run_sync(hub.log.seqs_up_to, tenant_id, list(cursor.seqs), horizon)
    cursor.advance(horizon, seqs)
