"""The scripted model on its own: the OpenAI wire format and every script, over real HTTP.

No OpenCode needed (these tests are not marked ``opencode``): a client speaks to the in-process
server the way OpenCode's ``@ai-sdk/openai-compatible`` provider does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from standins.model_script import ScriptError, parse_script
from standins.scripted_model import ScriptedModel, running_scripted_model

pytestmark = pytest.mark.timeout(60)

SYSTEM = "You are opencode.\n<env>\n  Working directory: /srv/work/repo\n</env>"


@pytest.fixture(scope="module")
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture(scope="module")
def url(model: ScriptedModel) -> Iterator[str]:
    with running_scripted_model(model=model) as base_url:
        yield base_url


def chat(prompt: str, *extra: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "coder",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": prompt},
            *extra,
        ],
        "tools": [{"type": "function", "function": {"name": "write", "parameters": {}}}],
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def stream_chunks(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> list:
    chunks: list[Any] = []
    with httpx.stream(
        "POST", f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                chunks.append(data if data == "[DONE]" else json.loads(data))
    return chunks


def test_models_lists_the_served_model(url: str) -> None:
    response = httpx.get(f"{url}/v1/models")
    assert response.json()["data"][0]["id"] == "coder"


def test_streamed_text_has_deltas_finish_reason_usage_and_done(url: str) -> None:
    chunks = stream_chunks(url, chat('hi [script:text reply="Hello there, friend."]', stream=True))
    assert chunks[-1] == "[DONE]"
    usage_chunk = chunks[-2]
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["prompt_tokens"] > 10
    assert usage["completion_tokens"] == 5  # 20 characters / 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    choices = [chunk["choices"][0] for chunk in chunks[:-2]]
    assert choices[0]["delta"]["role"] == "assistant"
    assert "".join(choice["delta"].get("content") or "" for choice in choices) == (
        "Hello there, friend."
    )
    assert [choice["finish_reason"] for choice in choices][-1] == "stop"
    assert all(choice["finish_reason"] is None for choice in choices[:-1])


def test_stream_without_include_usage_has_no_usage_chunk(url: str) -> None:
    body = chat("hi", stream=True)
    del body["stream_options"]
    chunks = stream_chunks(url, body)
    assert chunks[-1] == "[DONE]"
    assert all(chunk["choices"] for chunk in chunks[:-1])


def test_non_streaming_answer(url: str) -> None:
    response = httpx.post(f"{url}/v1/chat/completions", json=chat("hi"))
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"]
    assert body["usage"]["prompt_tokens"] > 0


def test_write_script_calls_the_write_tool_then_answers(url: str) -> None:
    prompt = '[script:write path=docs/a.md content="line 1\\nline 2\\n" reply=Written.]'
    chunks = stream_chunks(url, chat(prompt, stream=True))
    choices = [chunk["choices"][0] for chunk in chunks[:-2]]
    calls = [call for choice in choices for call in choice["delta"].get("tool_calls") or []]
    (call,) = calls
    assert call["index"] == 0
    assert call["type"] == "function"
    assert call["function"]["name"] == "write"
    arguments = json.loads(call["function"]["arguments"])
    assert arguments == {"filePath": "/srv/work/repo/docs/a.md", "content": "line 1\nline 2\n"}
    assert choices[-1]["finish_reason"] == "tool_calls"

    follow_up = chat(
        prompt,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "Wrote file successfully."},
    )
    answer = httpx.post(f"{url}/v1/chat/completions", json=follow_up).json()
    assert answer["choices"][0]["message"]["content"] == "Written."
    assert answer["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("path", "expected"),
    [("docs/a.md", "/srv/work/repo/docs/a.md"), ("/elsewhere/b.txt", "/elsewhere/b.txt")],
)
def test_read_script_calls_the_read_tool_then_answers(url: str, path: str, expected: str) -> None:
    prompt = f"[script:read path={path} reply=Read.]"
    chunks = stream_chunks(url, chat(prompt, stream=True))
    choices = [chunk["choices"][0] for chunk in chunks[:-2]]
    (call,) = [call for choice in choices for call in choice["delta"].get("tool_calls") or []]
    assert call["function"]["name"] == "read"
    assert json.loads(call["function"]["arguments"]) == {"filePath": expected}
    assert choices[-1]["finish_reason"] == "tool_calls"
    follow_up = chat(
        prompt,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "1: # project"},
    )
    answer = httpx.post(f"{url}/v1/chat/completions", json=follow_up).json()
    assert answer["choices"][0]["message"]["content"] == "Read."
    assert answer["choices"][0]["finish_reason"] == "stop"


def test_read_script_with_a_relative_path_needs_a_working_directory(url: str) -> None:
    body = {
        "model": "coder",
        "messages": [
            {"role": "system", "content": "You are opencode."},
            {"role": "user", "content": "[script:read path=a.md]"},
        ],
    }
    response = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert "Working directory" in response.json()["error"]["message"]


def test_bash_script_calls_the_bash_tool_then_answers(url: str) -> None:
    prompt = '[script:bash command="cat /etc/hostname; env" reply=Ran.]'
    chunks = stream_chunks(url, chat(prompt, stream=True))
    choices = [chunk["choices"][0] for chunk in chunks[:-2]]
    (call,) = [call for choice in choices for call in choice["delta"].get("tool_calls") or []]
    assert call["function"]["name"] == "bash"
    assert json.loads(call["function"]["arguments"])["command"] == "cat /etc/hostname; env"
    follow_up = chat(
        prompt,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "output"},
    )
    answer = httpx.post(f"{url}/v1/chat/completions", json=follow_up).json()
    assert answer["choices"][0]["message"]["content"] == "Ran."


def test_fail_401_is_an_openai_error(url: str) -> None:
    response = httpx.post(f"{url}/v1/chat/completions", json=chat("[script:fail-401]"))
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_api_key"


def test_fail_5xx_fails_n_times_per_conversation(url: str, model: ScriptedModel) -> None:
    body = chat("[script:fail-5xx times=2 status=503 retry_after=0.5]")
    first = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"x-session-id": "s1"})
    assert first.status_code == 503
    assert first.headers["retry-after-ms"] == "500"
    assert first.headers["retry-after"] == "1"
    other = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"x-session-id": "s2"})
    assert other.status_code == 503  # another conversation counts its own failures
    second = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"x-session-id": "s1"})
    assert second.status_code == 503
    third = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"x-session-id": "s1"})
    assert third.status_code == 200
    conversations = {
        request["conversation"]
        for request in model.requests()
        if request["headers"].get("x-session-id") in ("s1", "s2")
    }
    assert len(conversations) == 2


def test_hang_answers_nothing_until_the_client_goes(url: str, model: ScriptedModel) -> None:
    body = chat("[script:hang] test-hang")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/v1/chat/completions", json=body, timeout=httpx.Timeout(5, read=1.0))
    deadline = time.monotonic() + 5
    while True:
        (entry,) = [r for r in model.requests() if "test-hang" in json.dumps(r["body"])]
        if entry["outcome"] == "client disconnected":
            break
        assert time.monotonic() < deadline, entry["outcome"]
        time.sleep(0.1)
    assert entry["decision"] == "hang"


def test_slow_spreads_the_stream_over_the_given_time(url: str) -> None:
    started = time.monotonic()
    chunks = stream_chunks(url, chat('[script:slow seconds=1.2 reply="a b c d"]', stream=True))
    assert time.monotonic() - started >= 1.1
    assert chunks[-1] == "[DONE]"


def test_concurrent_requests_are_served_in_parallel(url: str) -> None:
    results: list[float] = []

    def call() -> None:
        begun = time.monotonic()
        httpx.post(f"{url}/v1/chat/completions", json=chat("[script:slow seconds=1]"), timeout=10)
        results.append(time.monotonic() - begun)

    started = time.monotonic()
    threads = [threading.Thread(target=call) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 5
    assert time.monotonic() - started < 3  # not 5 s: the waits overlap


def test_bad_marker_is_a_400(url: str) -> None:
    response = httpx.post(f"{url}/v1/chat/completions", json=chat("[script:explode]"))
    assert response.status_code == 400
    assert "unknown script" in response.json()["error"]["message"]


def test_requests_are_recorded_and_reset(url: str) -> None:
    httpx.post(f"{url}/v1/chat/completions", json=chat("record me"))
    recorded = httpx.get(f"{url}/_scripted/requests").json()
    assert any(entry["body"]["messages"][1]["content"] == "record me" for entry in recorded)
    assert httpx.post(f"{url}/_scripted/reset").json() == {"reset": True}
    assert httpx.get(f"{url}/_scripted/requests").json() == []


@pytest.mark.parametrize(
    ("text", "name", "parameters"),
    [
        ("plain prompt", "text", {}),
        ("[script:fail-5xx times=3]", "fail-5xx", {"times": "3"}),
        ('x [script:write path=a.md content="a b\\n\\"q\\""] y', "write", {"path": "a.md"}),
        ("[script:slow seconds=0.5 reply=ok]", "slow", {"seconds": "0.5", "reply": "ok"}),
        ('[script:read path="/a b/c.txt" reply=ok]', "read", {"path": "/a b/c.txt"}),
    ],
)
def test_parse_script(text: str, name: str, parameters: dict[str, str]) -> None:
    script = parse_script(text)
    assert script.name == name
    assert parameters.items() <= script.parameters.items()
    if name == "write":
        assert script.content == 'a b\n"q"'


@pytest.mark.parametrize(
    "text",
    [
        "[script:nope]",
        "[script:write]",
        "[script:bash]",
        "[script:read]",
        "[script:read path=a.md content=x]",
        "[script:fail-5xx status=404]",
        "[script:slow seconds=-1]",
        "[script:text colour=blue]",
        "[script:text reply=unterminated",
    ],
)
def test_parse_script_rejects(text: str) -> None:
    with pytest.raises(ScriptError):
        parse_script(text)
