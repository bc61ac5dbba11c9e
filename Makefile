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

fmt: bootstrap
	$(VENV_BIN)/ruff format .
	$(VENV_BIN)/ruff check --fix .

# PLACEHOLDER (to be replaced with the sessions issue #3): the real demo is not written yet.
demo:
	@echo "the demo arrives with the sessions issue (#3)"
	@exit 1

# Dagster web UI + daemon on this project's instance (DAGSTER_HOME defaults to .state/dagster).
dev: bootstrap
	bash scripts/dagster.sh dev
