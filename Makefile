# Developer entry points. `make test` is the project's test command (also run by .ci/run);
# extra pytest arguments: make test PYTEST_ARGS="-k name -x".
.PHONY: test bootstrap lint fmt demo dev

VENV_BIN := .venv/bin

test:
	bash scripts/test.sh $(PYTEST_ARGS)

bootstrap:
	bash scripts/bootstrap.sh

lint: bootstrap
	$(VENV_BIN)/ruff format --check .
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/lint-imports --no-cache

fmt: bootstrap
	$(VENV_BIN)/ruff format .
	$(VENV_BIN)/ruff check --fix .

# The demo: the main job on the embedded default (SQLite, no Redis) in a fresh .state/demo/:
# the scripted model, `dagster dev` (UI on 127.0.0.1:3000), two tenants each on its own managed
# runtime (OpenCode as the tenant's OS user in bubblewrap: run as root), a git repository per
# tenant made and served by the demo, a dozen sessions followed live (those on a repository push
# their branch indorch/<session id>), then acme's learning loop (48 history sessions, dataset,
# fine-tuning on the stand-in provider, evaluation, promotion, a session on the promoted model)
# and a summary; the UI stays up until Ctrl-C.
# Options go through ARGS: make demo ARGS="--exit" (stop when done), "--quick" (no slow / 60 s
# timeout session), "--port 3001"; all of them: .venv/bin/indorch demo --help.
demo: bootstrap
	bash scripts/install_opencode.sh >/dev/null
	$(VENV_BIN)/indorch demo $(ARGS)

# Dagster web UI + daemon on this project's instance (DAGSTER_HOME defaults to .state/dagster).
dev: bootstrap
	bash scripts/dagster.sh dev
