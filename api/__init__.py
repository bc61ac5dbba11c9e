"""The tenant HTTP API: a FastAPI app on the services, so the CLI and the API behave alike.

Every route authenticates the caller (`Authorization: Bearer <key>` and `X-Tenant-ID`) and hands
its identity to the services, which check roles; domain errors map to one JSON error body.
"""
