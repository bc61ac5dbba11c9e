"""The dataset's checks read the files as written and can fail: each is shown failing here."""

from __future__ import annotations

import json

from domain.training_examples import DatasetPolicy, SessionTranscript, build_dataset
from resources.dataset_store import DatasetStore
from services.dataset_checks import check_dataset


def stored(tmp_path, count: int):
    sessions = [
        SessionTranscript(session_id=f"IND-{n}", title="t", prompt=f"do {n}", answer=f"did {n}")
        for n in range(count)
    ]
    return DatasetStore(tmp_path).write(build_dataset("acme", sessions, DatasetPolicy()))


def by_name(results):
    return {result.name: result for result in results}


def test_a_good_dataset_passes_every_check(tmp_path):
    results = by_name(check_dataset(stored(tmp_path, 40), min_examples=10))
    assert set(results) == {"minimum_examples", "no_duplicates", "no_secrets", "eval_held_out"}
    assert all(result.passed for result in results.values())


def test_too_few_examples_fails(tmp_path):
    assert not by_name(check_dataset(stored(tmp_path, 3), min_examples=10))[
        "minimum_examples"
    ].passed


def test_a_duplicate_line_a_secret_and_a_leaked_eval_item_are_each_caught(tmp_path):
    files = stored(tmp_path, 40)
    lines = files.train_path.read_text().splitlines()
    leaked = json.loads(files.eval_path.read_text().splitlines()[0])
    leaked_example = {
        "messages": [*leaked["messages"], {"role": "assistant", "content": leaked["reference"]}]
    }
    secret = {
        "messages": [
            {"role": "user", "content": "key AKIAIOSFODNN7EXAMPLE"},
            {"role": "assistant", "content": "ok"},
        ]
    }
    lines += [lines[0], json.dumps(leaked_example), json.dumps(secret)]
    files.train_path.write_text("\n".join(lines) + "\n")
    results = by_name(check_dataset(files, min_examples=10))
    assert not results["no_duplicates"].passed
    assert not results["no_secrets"].passed
    assert "aws_access_key" in results["no_secrets"].detail
    assert not results["eval_held_out"].passed
