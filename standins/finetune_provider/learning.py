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

import bisect
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from standins.finetune_provider.training_data import TrainingPair

MIN_SIMILARITY = 0.25
TEMPERATURE = 0.25
PROBABILITY_FLOOR = 1e-3
LOGGED_STEPS = 100
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
    """TF-IDF vectors of the pairs' prompts behind an inverted index; the nearest prompt's
    answer for a question. A question is compared only with the prompts sharing a word with it,
    so answering and training stay fast on tens of thousands of pairs."""

    def __init__(self, pairs: Sequence[TrainingPair]) -> None:
        self.pairs = list(pairs)
        documents = [Counter(words(pair.prompt)) for pair in self.pairs]
        frequency = Counter(term for document in documents for term in document)
        count = len(documents)
        self._idf = {
            term: math.log((1 + count) / (1 + seen)) + 1.0 for term, seen in frequency.items()
        }
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for index, document in enumerate(documents):
            for term, weight in self._unit_vector(document).items():
                self._postings.setdefault(term, []).append((index, weight))

    def _unit_vector(self, counts: Counter[str]) -> dict[str, float]:
        vector = {term: n * self._idf.get(term, 0.0) for term, n in counts.items()}
        norm = math.sqrt(sum(weight * weight for weight in vector.values()))
        return {term: weight / norm for term, weight in vector.items()} if norm else {}

    def similarities(self, question: str, known: int | None = None) -> dict[int, float]:
        """Cosine with every prompt sharing a word with `question` (the others are 0), among
        the first `known` pairs (all when None)."""
        limit = len(self.pairs) if known is None else known
        scores: dict[int, float] = {}
        for term, weight in self._unit_vector(Counter(words(question))).items():
            for index, other in self._postings.get(term, ()):
                if index < limit:
                    scores[index] = scores.get(index, 0.0) + weight * other
        return scores

    def nearest(self, question: str, known: int | None = None) -> tuple[TrainingPair | None, float]:
        scores = self.similarities(question, known)
        if not scores:
            return None, 0.0
        best = max(scores, key=lambda index: (scores[index], -index))
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


def _fit(
    model: NearestAnswers,
    same_answer: dict[str, list[int]],
    known: int,
    batch: Sequence[int],
    epoch: int,
) -> tuple[float, float]:
    """Mean loss and accuracy of predicting the `batch` pairs from the first `known` pairs:
    softmax over the similarities (temperature divided by the epoch), with a "don't know"
    option at the similarity threshold."""
    temperature = TEMPERATURE / epoch
    unknown = math.exp(MIN_SIMILARITY / temperature)
    losses, right = [], 0
    for index in batch:
        pair = model.pairs[index]
        scores = model.similarities(pair.prompt, known)
        # prompts sharing no word score 0, so weigh exp(0) = 1 each
        total = sum(math.exp(score / temperature) for score in scores.values())
        total += (known - len(scores)) + unknown
        peers = same_answer[pair.answer]
        correct = sum(
            math.exp(scores.get(peer, 0.0) / temperature)
            for peer in peers[: bisect.bisect_left(peers, known)]
        )
        losses.append(-math.log(max(correct / total, PROBABILITY_FLOOR)))
        best = max(scores, key=lambda i: (scores[i], -i), default=None)
        if best is not None and scores[best] >= MIN_SIMILARITY:
            right += model.pairs[best].answer == pair.answer
    return sum(losses) / len(losses), right / len(batch)


def logged_step_numbers(total: int, budget: int) -> set[int]:
    """Every step when there are at most `budget`, else `budget` steps spread evenly, the last
    one among them (a long training logs a sample of its steps, not thousands)."""
    if total <= budget:
        return set(range(1, total + 1))
    return {round(total * k / budget) for k in range(1, budget + 1)}


def training_trace(
    pairs: Sequence[TrainingPair], epochs: int, batch_size: int, logged_steps: int = LOGGED_STEPS
) -> list[StepMetrics]:
    """The loss and accuracy of training on `pairs` (in order, `batch_size` per step), at the
    logged steps (all of them for up to `logged_steps` steps)."""
    model = NearestAnswers(pairs)
    same_answer: dict[str, list[int]] = {}
    for index, pair in enumerate(model.pairs):
        same_answer.setdefault(pair.answer, []).append(index)
    starts = range(0, len(pairs), batch_size)
    total = len(starts) * epochs
    logged = logged_step_numbers(total, logged_steps)
    trace: list[StepMetrics] = []
    step = 0
    for epoch in range(1, epochs + 1):
        for start in starts:
            step += 1
            if step not in logged:
                continue
            known = start if epoch == 1 else len(pairs)
            batch = range(start, min(start + batch_size, len(pairs)))
            loss, accuracy = _fit(model, same_answer, known, batch, epoch)
            trace.append(StepMetrics(step, total, epoch, round(loss, 4), accuracy))
    return trace
