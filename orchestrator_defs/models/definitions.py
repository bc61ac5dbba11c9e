"""The models area: each tenant's learning loop, from its sessions to a promoted model."""

import dagster as dg

from assets.training_dataset import training_dataset


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[training_dataset])
