"""The run worker: Dagster runs executed in threads of one long-lived process."""
