# Everything a fresh machine needs: `make test` creates .venv, installs streamal with its dev
# extra (pip's cache serves torch after the first time), fetches the Kafka broker jars from
# Maven Central, and runs the whole suite, the real-Kafka tests included.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install kafka-jars test lint bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

kafka-jars: install
	$(PY) -m streamal.testing.kafka_broker fetch

test: install kafka-jars
	@command -v promtool >/dev/null || [ -z "$$CI" ] || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) || echo "no promtool: alert rules get the fallback parse"
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check streamal tests benchmarks
	$(VENV)/bin/ruff format --check streamal tests benchmarks
	$(VENV)/bin/mypy streamal

bench: install kafka-jars
	$(PY) benchmarks/strategies.py --quick
	$(PY) benchmarks/committee.py --quick
	$(PY) benchmarks/stopping.py --quick
	$(PY) benchmarks/serve.py --quick
	$(PY) benchmarks/peers.py --quick
