# The README's two commands: `make up` and `make test`. Both create .venv and install
# what they need; running them again reinstalls only when pyproject.toml changed.

PYTHON ?= python3
export PATH := $(PATH):/usr/local/go/bin
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test lint typecheck imports unit k8s-binaries bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/lbctl up --once

lint: $(STAMP)
	$(BIN)/ruff check lbctl providers tests bench
	$(BIN)/ruff format --check lbctl providers tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict

imports: $(STAMP)
	$(BIN)/lint-imports

# The real kube-apiserver, etcd and kubectl for the differential suite: built from the Go
# module proxy into ~/.cache/lbctl/k8s once (about 20 min cold), skipped when cached or
# when KUBEBUILDER_ASSETS is set. Without Go those tests skip (in CI they fail).
k8s-binaries:
	@if [ -n "$$KUBEBUILDER_ASSETS" ] || command -v go >/dev/null 2>&1; then \
		scripts/k8s-binaries.sh; \
	else \
		echo "go not found: tests against the real kube-apiserver will be skipped"; \
	fi

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck imports k8s-binaries unit

bench: $(STAMP)
	$(BIN)/python bench/allocators.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
