"""Application services shared by the CLI, the Dagster sensors and ops, and the HTTP API."""
