"""Live events (the glass box) as Server-Sent Events: a session's, or all the tenant's sessions'.

Each SSE message is one recorded session event: ``event:`` its type (``session.status_changed``,
``agent.prompted``, ``agent.tool``, ...), ``data:`` the event as JSON, ``id:`` where the reader
stands. Send that id back as ``Last-Event-ID`` (EventSource does it when it reconnects) and the
stream resumes after it with nothing lost and nothing twice. A session stream's id is the
event's per-session seq; the tenant stream's is a cursor (`domain.tenant_event_cursor`). A
comment line (``: keepalive``) comes every `api.live_event_hub.KEEPALIVE_SECONDS` (15 s).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from api.authentication import CallerDep
from api.event_streams import Delivery, session_events, tenant_events
from api.live_event_hub import LiveEventHub
from api.services import Services
from domain.events import SessionEvent
from domain.tenant_event_cursor import TenantEventCursor, parse_session_event_id

router = APIRouter(tags=["events"])

ENCODED_EVENTS_KEPT = 4096
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_SSE_RESPONSE = {200: {"content": {"text/event-stream": {}}, "description": "an SSE stream"}}
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]


def live_event_hub(request: Request) -> LiveEventHub:
    """The process's hub, made on first use on the app's wiring (closed with the app)."""
    state = request.app.state
    if getattr(state, "live_event_hub", None) is None:
        wiring: Services = state.services
        state.live_event_hub = LiveEventHub(wiring.factory.live_events(), wiring.redis_url)
    return state.live_event_hub


HubDep = Annotated[LiveEventHub, Depends(live_event_hub)]


@router.get(
    "/sessions/{session_id}/events", response_class=StreamingResponse, responses=_SSE_RESPONSE
)
async def session_event_stream(
    session_id: str, caller: CallerDep, hub: HubDep, last_event_id: LastEventId = None
) -> StreamingResponse:
    """The session's events from the one after `Last-Event-ID` (a seq; none: from the first)."""
    tenant = _tenant(caller.tenant_id)
    after = parse_session_event_id(last_event_id) if last_event_id else 0
    # 404 when not the tenant's; the newest seq now, where a new source starts following
    newest = await to_thread.run_sync(hub.log.latest_seq, tenant, session_id)
    subscription = hub.subscribe_session(tenant, session_id, newest)
    return _sse(session_events(hub, subscription, tenant, session_id, after))


@router.get("/events", response_class=StreamingResponse, responses=_SSE_RESPONSE)
async def tenant_event_stream(
    caller: CallerDep, hub: HubDep, last_event_id: LastEventId = None
) -> StreamingResponse:
    """Every session's events of the tenant from now, or after `Last-Event-ID` (a cursor)."""
    tenant = _tenant(caller.tenant_id)
    parsed = TenantEventCursor.parse(last_event_id) if last_event_id else None
    subscription = hub.subscribe_tenant(tenant)
    try:
        cursor = parsed or TenantEventCursor(
            await to_thread.run_sync(hub.log.newest_event_id, tenant)
        )
    except BaseException:
        hub.unsubscribe(subscription)
        raise
    return _sse(tenant_events(hub, subscription, tenant, cursor))


def _tenant(tenant_id: str | None) -> str:
    assert tenant_id is not None  # an API caller is always a tenant's
    return tenant_id


class _EncodedEvents:
    """Each event's ``event:``/``data:`` lines encoded once for all the readers it reaches (the
    hub hands them the same object); bounded, the oldest forgotten first."""

    def __init__(self, size: int = ENCODED_EVENTS_KEPT) -> None:
        self._size = size
        self._encoded: OrderedDict[int, tuple[SessionEvent, bytes]] = OrderedDict()

    def lines(self, event: SessionEvent) -> bytes:
        found = self._encoded.get(id(event))
        if found is not None and found[0] is event:
            return found[1]
        text = f"event: {event.event_type}\ndata: {event.model_dump_json()}\n\n".encode()
        self._encoded[id(event)] = (event, text)  # the event held: its id is not reused
        if len(self._encoded) > self._size:
            self._encoded.popitem(last=False)
        return text


_encoded = _EncodedEvents()


def _sse(deliveries: AsyncIterator[Delivery]) -> StreamingResponse:
    async def messages() -> AsyncIterator[bytes]:
        yield b": stream open\n\n"  # headers and a first byte now: the client knows it is live
        async for delivery in deliveries:
            if delivery is None:
                yield b": keepalive\n\n"
                continue
            event_id, event = delivery
            yield b"id: " + event_id.encode() + b"\n" + _encoded.lines(event)

    return StreamingResponse(messages(), media_type="text/event-stream", headers=SSE_HEADERS)
