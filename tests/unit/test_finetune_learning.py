"""The stand-in provider's learning model: a tuned model answers from its training pairs (also
for questions worded differently), the base model does not know them, and the training loss
comes from the model's fit, falling as it learns."""

from __future__ import annotations

import json

import pytest

from standins.finetune_provider.learning import (
    BaseModel,
    TunedModel,
    similarity,
    training_trace,
)
from standins.finetune_provider.training_data import (
    TrainingDataError,
    TrainingPair,
    parse_training_file,
)

PAIRS = [
    TrainingPair("How do I run the unit tests of billing-service?", "Run `make check-billing`."),
    TrainingPair("Where is the invoice template stored?", "In templates/invoice/v3.html.j2."),
    TrainingPair("Which port does the ledger API listen on?", "The ledger API listens on 7311."),
    TrainingPair("Who approves database migrations?", "The data-platform on-call approves."),
    TrainingPair("How do I rotate the signing key?", "Run `ops rotate-key --kind signing`."),
    TrainingPair("What is the release branch called?", "Releases are cut from `train/stable`."),
]
HELD_OUT = [
    ("what command runs billing-service unit tests", "Run `make check-billing`."),
    ("the ledger api: which port is it listening on?", "The ledger API listens on 7311."),
    ("where do we keep the invoice template", "In templates/invoice/v3.html.j2."),
    ("rotating the signing key: how?", "Run `ops rotate-key --kind signing`."),
]


def line(*messages: tuple[str, str]) -> str:
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in messages]})


def test_similar_wordings_score_higher_than_unrelated_ones() -> None:
    question = "Which port does the ledger API listen on?"
    assert similarity(question, "ledger api port") > similarity(question, "invoice template")


def test_the_tuned_model_answers_held_out_paraphrases_better_than_the_base_model() -> None:
    tuned = TunedModel(PAIRS)
    base = BaseModel()
    tuned_right = sum(tuned.answer(question) == expected for question, expected in HELD_OUT)
    base_right = sum(base.answer(question) == expected for question, expected in HELD_OUT)
    assert tuned_right == len(HELD_OUT)
    assert base_right == 0


def test_the_tuned_model_falls_back_to_the_base_model_outside_what_it_learned() -> None:
    question = "what is the capital of the moon colony"
    assert TunedModel(PAIRS).answer(question) == BaseModel().answer(question)


def test_a_model_trained_on_other_pairs_does_not_know_these() -> None:
    other = TunedModel([TrainingPair("How are payroll exports named?", "payroll-<date>.csv")])
    assert all(other.answer(question) != expected for question, expected in HELD_OUT)


def test_training_loss_falls_over_epochs_and_accuracy_rises() -> None:
    trace = training_trace(PAIRS, epochs=3, batch_size=2)
    assert [step.step for step in trace] == list(range(1, 10))
    first_epoch = [s.train_loss for s in trace[:3]]
    last_epoch = [s.train_loss for s in trace[-3:]]
    assert sum(last_epoch) / 3 < sum(first_epoch) / 3
    assert trace[-1].train_mean_token_accuracy == 1.0
    assert trace[0].train_mean_token_accuracy < 1.0
    assert all(s.total_steps == 9 for s in trace)


def test_training_loss_depends_on_the_data() -> None:
    repeated = [PAIRS[0]] * 6
    assert (
        training_trace(repeated, 1, 2)[-1].train_loss < training_trace(PAIRS, 1, 2)[-1].train_loss
    )


def test_a_chat_file_gives_one_pair_per_assistant_turn_with_the_user_text_before_it() -> None:
    content = "\n".join(
        [
            line(("system", "be brief"), ("user", "q1"), ("assistant", "a1")),
            line(("user", "q2"), ("assistant", "a2"), ("user", "q3"), ("assistant", "a3")),
        ]
    )
    assert parse_training_file(content.encode()) == [
        TrainingPair("q1", "a1"),
        TrainingPair("q2", "a2"),
        TrainingPair("q3", "a3"),
    ]


def test_assistant_tool_calls_are_kept_as_the_answer_when_there_is_no_text() -> None:
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "write", "arguments": '{"filePath": "a.md"}'},
    }
    record = {
        "messages": [
            {"role": "user", "content": "write a.md"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
        ]
    }
    pairs = parse_training_file(json.dumps(record).encode())
    assert pairs[0].prompt == "write a.md"
    assert "write" in pairs[0].answer
    assert "a.md" in pairs[0].answer


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "no training examples"),
        (b"not json at all\n", "line 1"),
        (b'{"prompt": "old format"}\n', "line 1: no 'messages'"),
        (line(("user", "q"), ("user", "q2")).encode(), "no assistant"),
        (b"\xff\xfe\n", "UTF-8"),
        (line(("user", "q"), ("robot", "a")).encode(), "role 'robot'"),
    ],
)
def test_malformed_training_files_are_refused_with_code_and_line(content: bytes, says: str) -> None:
    with pytest.raises(TrainingDataError) as refused:
        parse_training_file(content)
    assert refused.value.code == "invalid_training_file"
    assert says in refused.value.message


def test_a_long_training_logs_at_most_the_step_budget_evenly_with_the_last_step() -> None:
    pairs = [TrainingPair(f"question number {n} about the build", f"answer {n}") for n in range(50)]
    trace = training_trace(pairs, epochs=3, batch_size=2, logged_steps=10)
    steps = [s.step for s in trace]
    assert len(steps) == 10
    assert steps[-1] == 75
    assert steps == sorted(set(steps))
    assert all(s.total_steps == 75 for s in trace)
    assert trace[-1].train_loss < trace[0].train_loss
