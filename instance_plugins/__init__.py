"""Dagster instance plugins named by `dagster.yaml`: the run worker's launcher and the compute-log
manager. Not resources (no run or op uses them); every private `dagster._` import they need sits
behind `instance_plugins.dagster_internals`."""
