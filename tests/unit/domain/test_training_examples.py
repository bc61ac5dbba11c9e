"""A tenant's training data: from its good sessions, scrubbed, unique, with a held-out split."""

from __future__ import annotations

import json

from domain.secret_scrubbing import find_secrets
from domain.training_examples import DatasetPolicy, SessionTranscript, build_dataset, to_jsonl


def transcript(n: int, **changes) -> SessionTranscript:
    fields = {
        "session_id": f"IND-{n:06d}",
        "title": f"task {n}",
        "prompt": f"Write the function number {n} in module m{n}.py",
        "answer": f"Done: wrote m{n}.py with the function number {n}.",
        "tool_calls": ["write"],
        "files_changed": [f"m{n}.py"],
        "attempts": 1,
    }
    fields.update(changes)
    return SessionTranscript(**fields)


def test_each_session_becomes_a_chat_with_its_actions_kept():
    dataset = build_dataset("acme", [transcript(1)], DatasetPolicy(eval_fraction=0.0))
    (example,) = dataset.train
    roles = [m["role"] for m in example.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    call = example.messages[2]["tool_calls"][0]
    assert call["function"]["name"] == "write"
    assert example.messages[3]["tool_call_id"] == call["id"]
    assert example.messages[1]["content"].endswith("module m1.py")
    assert example.messages[-1]["content"].startswith("Done: wrote m1.py")
    line = json.loads(to_jsonl(dataset.train).splitlines()[0])
    assert line == {"messages": example.messages}


def test_a_session_without_tool_calls_is_a_plain_exchange():
    dataset = build_dataset("acme", [transcript(1, tool_calls=[])], DatasetPolicy(eval_fraction=0))
    assert [m["role"] for m in dataset.train[0].messages] == ["system", "user", "assistant"]


def test_secrets_are_scrubbed_from_prompt_and_answer():
    leaky = transcript(
        2,
        prompt="Connect with postgresql://app:Sup3rS3cret@db:5432/prod and fix the bug",
        answer="Used API_TOKEN=9f8e7d6c5b4a39281706 to test it",
    )
    dataset = build_dataset("acme", [leaky], DatasetPolicy(eval_fraction=0.0))
    text = to_jsonl(dataset.train)
    assert "Sup3rS3cret" not in text and "9f8e7d6c5b4a" not in text
    assert not find_secrets(text)
    assert dataset.secrets_scrubbed == 2


def test_duplicates_are_removed_and_counted():
    sessions = [transcript(1), transcript(1, session_id="IND-999999"), transcript(2)]
    dataset = build_dataset("acme", sessions, DatasetPolicy(eval_fraction=0.0))
    assert len(dataset.train) == 2
    assert dataset.duplicates_removed == 1


def test_the_quality_bar_skips_and_says_why():
    sessions = [
        transcript(1),
        transcript(2, answer=""),
        transcript(3, attempts=4),
        transcript(4, tool_calls=[], files_changed=[]),
    ]
    policy = DatasetPolicy(eval_fraction=0.0, max_attempts=3, require_changes=True)
    dataset = build_dataset("acme", sessions, policy)
    assert [e.session_id for e in dataset.train] == ["IND-000001"]
    assert dataset.skipped == {"no answer": 1, "too many attempts": 1, "no file changed": 1}


def test_the_split_is_deterministic_disjoint_and_near_the_fraction():
    sessions = [transcript(n) for n in range(400)]
    policy = DatasetPolicy(eval_fraction=0.2)
    first = build_dataset("acme", sessions, policy)
    again = build_dataset("acme", list(reversed(sessions)), policy)
    assert {e.key for e in first.eval} == {e.key for e in again.eval}
    assert not {e.key for e in first.eval} & {e.key for e in first.train}
    assert 50 <= len(first.eval) <= 110
    # adding sessions never moves an existing example from one side to the other
    grown = build_dataset("acme", [*sessions, *(transcript(n) for n in range(400, 500))], policy)
    assert {e.key for e in first.eval} <= {e.key for e in grown.eval}


def test_an_evaluation_item_is_the_question_and_its_reference_answer():
    dataset = build_dataset("acme", [transcript(n) for n in range(60)], DatasetPolicy())
    item = dataset.eval[0].evaluation_item()
    assert [m["role"] for m in item.messages] == ["system", "user"]
    assert item.reference.startswith("Done: wrote")
