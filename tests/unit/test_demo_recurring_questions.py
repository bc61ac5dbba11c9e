"""The demo's recurring questions are enough for the learning loop to decide honestly: the
dataset they make holds out at least the items evaluation needs, the stand-in provider's tuned
model (trained on the rest) beats its base model by the promotion rule, and the marker-free
question the promoted model is asked at the end is answered from what it learned."""

from __future__ import annotations

from domain.ab_comparison import PromotionRule, compare_paired
from domain.answer_grading import is_right
from domain.training_examples import DatasetPolicy, SessionTranscript, build_dataset, to_jsonl
from indorch.demo.recurring_questions import (
    EVAL_FRACTION,
    LEARNING_TENANT,
    PROMOTED_ANSWER,
    PROMOTED_QUESTION,
    QUESTIONS,
    recurring_sessions,
)
from standins.finetune_provider.learning import BaseModel, TunedModel
from standins.finetune_provider.training_data import parse_training_file
from standins.model_script import parse_script


def dataset():
    transcripts = [
        SessionTranscript(
            session_id=f"s{index:03d}",
            title=session.title,
            prompt=session.prompt,
            answer=parse_script(session.prompt).parameters["reply"],
        )
        for index, session in enumerate(recurring_sessions())
    ]
    return build_dataset(LEARNING_TENANT, transcripts, DatasetPolicy(eval_fraction=EVAL_FRACTION))


def test_every_session_is_a_scripted_answer_of_its_question() -> None:
    sessions = recurring_sessions()
    assert len(sessions) == sum(len(q.wordings) for q in QUESTIONS)
    answers = {q.answer for q in QUESTIONS}
    assert {parse_script(s.prompt).parameters["reply"] for s in sessions} == answers
    assert {s.tenant for s in sessions} == {LEARNING_TENANT}


def test_the_tuned_model_beats_the_base_by_the_promotion_rule() -> None:
    built = dataset()
    assert len(built.eval) >= PromotionRule().min_items
    tuned = TunedModel(parse_training_file(to_jsonl(built.train).encode()))
    base = BaseModel()
    items = [example.evaluation_item() for example in built.eval]
    tuned_right = [is_right(i.reference, tuned.answer(i.messages[-1]["content"])) for i in items]
    base_right = [is_right(i.reference, base.answer(i.messages[-1]["content"])) for i in items]

    decision = PromotionRule().decide(compare_paired(base_right, tuned_right, seed=0))

    assert decision.promote, decision.reason


def test_the_promoted_question_is_answered_from_what_was_learned() -> None:
    assert "[script:" not in PROMOTED_QUESTION
    tuned = TunedModel(parse_training_file(to_jsonl(dataset().train).encode()))
    assert tuned.answer(PROMOTED_QUESTION) == PROMOTED_ANSWER
    assert not is_right(PROMOTED_ANSWER, BaseModel().answer(PROMOTED_QUESTION))
