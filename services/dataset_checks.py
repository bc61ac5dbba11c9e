"""The training dataset's checks, run on the files as written (not on what the builder meant to
write): enough examples, no duplicate, no secret pattern left, no evaluation item in training."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from domain.secret_scrubbing import find_secrets
from domain.training_examples import example_key
from resources.dataset_store import StoredDataset


@dataclass(frozen=True)
class DatasetCheck:
    name: str
    passed: bool
    detail: str
    blocking: bool = True


def check_dataset(stored: StoredDataset, min_examples: int) -> list[DatasetCheck]:
    train_lines = stored.train_path.read_text().splitlines()
    eval_lines = stored.eval_path.read_text().splitlines()
    train = [json.loads(line) for line in train_lines]
    held_out = [json.loads(line) for line in eval_lines]
    duplicates = sum(count - 1 for count in Counter(train_lines).values() if count > 1)
    kinds = Counter(found.kind for line in train_lines for found in find_secrets(line))
    train_keys = {_key(example["messages"]) for example in train}
    leaked = sum(
        1
        for item in held_out
        if example_key(_user(item["messages"]), item["reference"]) in train_keys
    )
    return [
        DatasetCheck(
            "minimum_examples",
            len(train) >= min_examples,
            f"{len(train)} training examples, {min_examples} needed",
        ),
        DatasetCheck("no_duplicates", duplicates == 0, f"{duplicates} duplicate lines"),
        DatasetCheck(
            "no_secrets",
            not kinds,
            ", ".join(f"{kind}: {n}" for kind, n in sorted(kinds.items())) or "none found",
        ),
        DatasetCheck(
            "eval_held_out", leaked == 0, f"{leaked} of {len(held_out)} eval items in training"
        ),
    ]


def _user(messages: list[dict[str, Any]]) -> str:
    return next((m.get("content") or "" for m in messages if m.get("role") == "user"), "")


def _key(messages: list[dict[str, Any]]) -> str:
    return example_key(_user(messages), messages[-1].get("content") or "")
