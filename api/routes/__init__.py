"""One module per resource; each exposes `router` and is listed in `api.app`."""
