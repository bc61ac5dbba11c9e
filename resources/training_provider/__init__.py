"""The fine-tuning provider adapter: the `openai` client behind a Dagster resource, typed errors."""
