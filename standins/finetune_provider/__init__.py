"""A stand-in for an OpenAI-compatible fine-tuning provider that really learns.

Files, fine-tuning jobs (validating_files → queued → running → succeeded over time, or failed
with ``invalid_training_file``), job events with per-step loss, and chat completions where a
tuned model answers from its training pairs (:mod:`.learning`) and the base model does not know
them. Jobs live in the provider's own SQLite file (:mod:`.store`); callers are kept apart by
their API key. Start it with :class:`.server.FineTuneProviderServer` or
``python -m standins.finetune_provider --port P --data DIR``.
"""
