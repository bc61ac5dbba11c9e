"""The real OpenCode adapter satisfies the port the supervisor depends on.

Contract: every call of `AgentServer`, `AgentEventStream` and `AgentServers` exists on the
adapter (`OpenCodeClient`, `ServerEventStream`, `OpenCodeResource`), async where the port's is,
and accepts the port's arguments as the port names them; what the adapter adds is optional.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest

from resources.opencode.client import OpenCodeClient
from resources.opencode.event_stream import ServerEventStream
from resources.opencode.resource import OpenCodeResource
from services.supervision.agent_server import AgentEventStream, AgentServer, AgentServers

PAIRS = [
    pytest.param(AgentServer, OpenCodeClient, id="client"),
    pytest.param(AgentEventStream, ServerEventStream, id="event-stream"),
    pytest.param(AgentServers, OpenCodeResource, id="factory"),
]


def _calls(port: type) -> dict[str, object]:
    names = {
        name
        for klass in port.__mro__
        if klass.__module__ == AgentServer.__module__
        for name, value in vars(klass).items()
        if callable(value) and not name.startswith("_")
    }
    return {name: getattr(port, name) for name in names}


def _mismatches(port_call: object, real_call: object) -> list[str]:
    found = []
    if inspect.iscoroutinefunction(port_call) != inspect.iscoroutinefunction(real_call):
        found.append("async in one, not in the other")
    port_params = inspect.signature(port_call).parameters  # type: ignore[arg-type]
    real_params = inspect.signature(real_call).parameters  # type: ignore[arg-type]
    for name, param in port_params.items():
        real = real_params.get(name)
        if real is None:
            found.append(f"no parameter {name}")
        elif real.kind is not param.kind and param.kind is not param.POSITIONAL_OR_KEYWORD:
            found.append(f"{name} is {real.kind.description}, the port's {param.kind.description}")
        elif param.default is not param.empty and real.default is param.empty:
            found.append(f"{name} is required, optional in the port")
    for name, real in real_params.items():
        if (
            name not in port_params
            and real.default is real.empty
            and real.kind
            in (
                real.POSITIONAL_OR_KEYWORD,
                real.KEYWORD_ONLY,
            )
        ):
            found.append(f"{name} is required, unknown to the port")
    return found


@pytest.mark.parametrize(("port", "adapter"), PAIRS)
def test_the_opencode_adapter_offers_every_call_of_the_port(port: type, adapter: type) -> None:
    calls = _calls(port)
    assert calls, "the port names no calls: this test would check nothing"
    problems = {
        name: _mismatches(call, getattr(adapter, name, None))
        if hasattr(adapter, name)
        else ["missing"]
        for name, call in calls.items()
    }
    assert {name: found for name, found in problems.items() if found} == {}


def test_the_client_and_stream_carry_the_ports_attributes() -> None:
    client = OpenCodeClient("http://127.0.0.1:9")
    stream = client.event_stream("/srv/agents/tenant-acme")
    assert isinstance(client.base_url, str)
    assert not stream.connected.is_set()
    assert isinstance(stream, ServerEventStream)
    asyncio.run(stream.close())
    asyncio.run(client.aclose())
