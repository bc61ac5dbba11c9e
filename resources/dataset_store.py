"""Where training datasets live: ``<root>/<tenant>/<version>/{train,eval}.jsonl``.

The version is the hash of the content, so rebuilding an unchanged dataset lands on the same
files (and the same provider upload), and a fine-tuning job names exactly the data it was trained
on. Files are written to a temporary name and renamed: a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field

from domain.errors import InvalidInput
from domain.training_examples import EvaluationItem, TrainingDataset, to_jsonl
from resources import settings

SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
TRAIN_FILE, EVAL_FILE = "train.jsonl", "eval.jsonl"


@dataclass(frozen=True)
class StoredDataset:
    tenant_id: str
    version: str
    train_path: Path
    eval_path: Path


class DatasetStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, dataset: TrainingDataset) -> StoredDataset:
        train = to_jsonl(dataset.train)
        held_out = "".join(
            json.dumps(e.evaluation_item().model_dump(), sort_keys=True) + "\n"
            for e in dataset.eval
        )
        version = hashlib.sha256(f"{train}\x00{held_out}".encode()).hexdigest()[:16]
        directory = self._directory(dataset.tenant_id, version)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        stored = StoredDataset(
            dataset.tenant_id, version, directory / TRAIN_FILE, directory / EVAL_FILE
        )
        _write_whole(stored.train_path, train)
        _write_whole(stored.eval_path, held_out)
        return stored

    def find(self, tenant: str, version: str) -> StoredDataset:
        directory = self._directory(tenant, version)
        return StoredDataset(tenant, version, directory / TRAIN_FILE, directory / EVAL_FILE)

    def read_eval(self, tenant: str, version: str) -> list[EvaluationItem]:
        path = self.find(tenant, version).eval_path
        return [EvaluationItem.model_validate_json(line) for line in path.read_text().splitlines()]

    def _directory(self, tenant: str, version: str) -> Path:
        for field, value in (("tenant", tenant), ("dataset version", version)):
            if not SAFE_NAME.fullmatch(value):
                raise InvalidInput(field, f"{value!r} is not a safe file name")
        return self.root / tenant / version


def _write_whole(path: Path, content: str) -> None:
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    draft.write_text(content)
    os.replace(draft, path)


class DatasetStoreResource(dg.ConfigurableResource):
    """The dataset store as the assets ask for it."""

    root: str = Field(description="Directory of the tenants' training datasets.")

    def store(self) -> DatasetStore:
        return DatasetStore(Path(self.root))


def configured_dataset_store() -> DatasetStoreResource:
    return DatasetStoreResource(root=str(settings.dataset_dir()))
