"""Dataset files: one directory per tenant and content version, written whole."""

from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from domain.training_examples import DatasetPolicy, SessionTranscript, build_dataset
from resources.dataset_store import DatasetStore


def dataset(tenant: str, count: int):
    sessions = [
        SessionTranscript(session_id=f"IND-{n}", title="t", prompt=f"do {n}", answer=f"did {n}")
        for n in range(count)
    ]
    return build_dataset(tenant, sessions, DatasetPolicy(eval_fraction=0.3))


def test_the_same_content_is_the_same_version_and_new_content_a_new_one(tmp_path):
    store = DatasetStore(tmp_path)
    first = store.write(dataset("acme", 20))
    assert store.write(dataset("acme", 20)).version == first.version
    grown = store.write(dataset("acme", 21))
    assert grown.version != first.version
    assert first.train_path.exists() and grown.train_path.exists()
    assert store.read_eval("acme", first.version)[0].reference.startswith("did")


def test_a_tenant_id_cannot_climb_out_of_the_store(tmp_path):
    store = DatasetStore(tmp_path / "store")
    with pytest.raises(InvalidInput):
        store.write(dataset("../escape", 3))
    with pytest.raises(InvalidInput):
        store.read_eval("acme", "../../x")
    assert not (tmp_path / "escape").exists()
