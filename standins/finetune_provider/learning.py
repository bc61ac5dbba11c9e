"""What the stand-in provider's models know, and how training measures its fit.

A **tuned model** is a nearest-neighbour model over its training pairs: a prompt is compared
with every training prompt (TF-IDF weighted word overlap, cosine), and the closest pair's answer
is given when it is close enough; otherwise the tuned model answers as its base model would. The
**base model** knows only a few general programming answers (the same nearest-neighbour method
over a small built-in corpus) and a generic reply: it has never seen a tenant's data.

Training is measured, not invented: at each step the model predicts the step's batch before
learning it (first epoch: from what it has seen so far), the loss is the mean negative
log-probability of the right answer under a softmax over similarities, sharper each epoch.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from standins.finetune_provider.training_data import TrainingPair

MIN_SIMILARITY = 0.25
TEMPERATURE = 0.25
PROBABILITY_FLOOR = 1e-3
WORD = re.compile(r"[a-z0-9]+")
STOP_WORDS_TEXT = (
    "a an and are at be by can do does for from how i in is it its of on or our the this "
    "to we what when where which who why with you your"
)
STOP_WORDS = frozenset(STOP_WORDS_TEXT.split())
GENERIC_REPLY = (
    "I do not know the specifics of your project. Look at its README and its build files, "
    "or ask a maintainer."
)
GENERAL_KNOWLEDGE = (
    TrainingPair("How do I run the tests?", "Run the project's test command, e.g. `pytest`."),
    TrainingPair("Which port does a web server listen on?", "Web servers usually use 80 or 443."),
    TrainingPair("How do I rotate a key?", "Create a new key, deploy it, then revoke the old one."),
    TrainingPair("Where are templates stored?", "Usually in a `templates/` directory."),
    TrainingPair("How do I create a git branch?", "Run `git switch -c <name>`."),
    TrainingPair("Who approves changes?", "Usually the code owners of the files changed."),
)


def stem(word: str) -> str:
    """A light suffix strip so "runs", "running" and "run" meet."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def words(text: str) -> list[str]:
    return [stem(w) for w in WORD.findall(text.lower()) if w not in STOP_WORDS]


def _cosine(left: dict[str, float], right: dict[str, float]) -> float:
    dot = sum(weight * right.get(term, 0.0) for term, weight in left.items())
    norm = math.sqrt(sum(w * w for w in left.values())) * math.sqrt(
        sum(w * w for w in right.values())
    )
    return dot / norm if norm else 0.0


def similarity(left: str, right: str) -> float:
    """Cosine of plain word counts (no corpus weights): for tests and quick comparisons."""
    return _cosine(
        {k: float(v) for k, v in Counter(words(left)).items()},
        {k: float(v) for k, v in Counter(words(right)).items()},
    )


class NearestAnswers:
    """TF-IDF vectors of the pairs' prompts; the nearest prompt's answer for a question."""

    def __init__(self, pairs: Sequence[TrainingPair]) -> None:
        self.pairs = list(pairs)
        documents = [Counter(words(pair.prompt)) for pair in self.pairs]
        frequency = Counter(term for document in documents for term in document)
        count = len(documents)
        self._idf = {
            term: math.log((1 + count) / (1 + seen)) + 1.0 for term, seen in frequency.items()
        }
        self._vectors = [self._vector(document) for document in documents]

    def _vector(self, counts: Counter[str]) -> dict[str, float]:
        return {term: n * self._idf.get(term, 0.0) for term, n in counts.items()}

    def similarities(self, question: str) -> list[float]:
        vector = self._vector(Counter(words(question)))
        return [_cosine(vector, other) for other in self._vectors]

    def nearest(self, question: str) -> tuple[TrainingPair | None, float]:
        scores = self.similarities(question)
        if not scores:
            return None, 0.0
        best = max(range(len(scores)), key=lambda index: (scores[index], -index))
        return self.pairs[best], scores[best]


class BaseModel:
    """A base model: general answers only, else a generic reply."""

    def __init__(self) -> None:
        self._general = NearestAnswers(GENERAL_KNOWLEDGE)

    def answer(self, question: str) -> str:
        pair, score = self._general.nearest(question)
        return pair.answer if pair is not None and score >= MIN_SIMILARITY else GENERIC_REPLY


class TunedModel:
    """A base model tuned on `pairs`: the closest training answer when close enough."""

    def __init__(self, pairs: Sequence[TrainingPair], base: BaseModel | None = None) -> None:
        self._memory = NearestAnswers(pairs)
        self._base = base or BaseModel()

    def answer(self, question: str) -> str:
        pair, score = self._memory.nearest(question)
        if pair is not None and score >= MIN_SIMILARITY:
            return pair.answer
        return self._base.answer(question)


@dataclass(frozen=True)
class StepMetrics:
    step: int
    total_steps: int
    epoch: int
    train_loss: float
    train_mean_token_accuracy: float


def _fit(memory: Sequence[TrainingPair], batch: Sequence[TrainingPair], epoch: int) -> tuple:
    """Mean loss and accuracy of predicting `batch` from `memory` (softmax over similarities,
    temperature divided by the epoch; a "don't know" option at the similarity threshold)."""
    model = NearestAnswers(memory)
    temperature = TEMPERATURE / epoch
    losses, right = [], 0
    for pair in batch:
        scores = model.similarities(pair.prompt)
        weights = [math.exp(score / temperature) for score in scores]
        unknown = math.exp(MIN_SIMILARITY / temperature)
        correct = sum(
            weight
            for weight, known in zip(weights, memory, strict=True)
            if known.answer == pair.answer
        )
        probability = correct / (sum(weights) + unknown)
        losses.append(-math.log(max(probability, PROBABILITY_FLOOR)))
        best = max(range(len(scores)), key=lambda i: scores[i], default=None)
        right += (
            best is not None
            and scores[best] >= MIN_SIMILARITY
            and (memory[best].answer == pair.answer)
        )
    return sum(losses) / len(losses), right / len(batch)


def training_trace(
    pairs: Sequence[TrainingPair], epochs: int, batch_size: int
) -> list[StepMetrics]:
    """The per-step loss and accuracy of training on `pairs` (in order, `batch_size` per step)."""
    batches = [pairs[start : start + batch_size] for start in range(0, len(pairs), batch_size)]
    total = len(batches) * epochs
    trace: list[StepMetrics] = []
    for epoch in range(1, epochs + 1):
        for number, batch in enumerate(batches):
            seen = pairs[: number * batch_size] if epoch == 1 else pairs
            loss, accuracy = _fit(seen, batch, epoch)
            trace.append(StepMetrics(len(trace) + 1, total, epoch, round(loss, 4), accuracy))
    return trace
