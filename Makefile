# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test lint bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[ml,redis,otel,dev,spark]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m newsdesk.demo --out demo-output

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	mkdir -p benchmarks/results
	for b in benchmarks/*.py; do \
	  n=$$(basename $$b .py); \
	  $(PY) $$b --quick --json benchmarks/results/$$n.json || exit 1; \
	done

clean:
	rm -rf $(VENV) demo-output
