"""Building a tenant's training dataset from its completed sessions: read a page at a time, turned
into chat examples by the domain's rules, written to the dataset store."""

from __future__ import annotations

from dataclasses import dataclass

from domain.caller import Caller
from domain.tenant import Role
from domain.training_examples import (
    DatasetPolicy,
    SessionTranscript,
    TrainingDataset,
    build_dataset,
)
from resources.database import Database, tenant_scope, unit_of_work
from resources.dataset_store import DatasetStore, StoredDataset

PAGE = 500


@dataclass(frozen=True)
class BuiltDataset:
    dataset: TrainingDataset
    stored: StoredDataset


class TrainingDataService:
    def __init__(self, database: Database, store: DatasetStore) -> None:
        self._database = database
        self._store = store

    def build(
        self, caller: Caller, tenant: str, policy: DatasetPolicy, page: int = PAGE
    ) -> BuiltDataset:
        caller.require_tenant(tenant)
        caller.require(Role.LEAD, "build the training dataset")
        with unit_of_work(self._database) as uow:
            uow.tenants.get(tenant)  # NotFound: a partition of no (or no longer a) tenant
        dataset = build_dataset(tenant, self._transcripts(tenant, page), policy)
        return BuiltDataset(dataset, self._store.write(dataset))

    def _transcripts(self, tenant: str, page: int):
        after = ""
        while True:
            with tenant_scope(tenant), unit_of_work(self._database) as uow:
                batch: list[SessionTranscript] = uow.session_transcripts.completed(after, page)
            yield from batch
            if len(batch) < page:
                return
            after = batch[-1].session_id
