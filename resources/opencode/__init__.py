"""The OpenCode server adapter: typed models, an async client, a shared event stream per server."""
