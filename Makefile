# Everything a fresh machine needs: `make test` creates .venv, installs streamal with its dev
# extra (pip's cache serves torch after the first time), fetches the Kafka broker jars from
# Maven Central, installs Label Studio into a venv of its own (for the bridge's tests), and runs
# the whole suite, the real-Kafka and real-Label-Studio tests included.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install kafka-jars label-studio test lint bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

kafka-jars: install
	$(PY) -m streamal.testing.kafka_broker fetch

label-studio: install
	$(PY) -m streamal.testing.label_studio fetch

test: install kafka-jars label-studio
	@command -v promtool >/dev/null || [ -z "$$CI" ] || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) || echo "no promtool: alert rules get the fallback parse"
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check streamal tests benchmarks
	$(VENV)/bin/ruff format --check streamal tests benchmarks
	$(VENV)/bin/mypy streamal

bench: install kafka-jars label-studio
	$(PY) benchmarks/strategies.py --quick
	$(PY) benchmarks/committee.py --quick
	$(PY) benchmarks/stopping.py --quick
	$(PY) benchmarks/proxy.py --quick
	$(PY) benchmarks/subsample.py --quick
	$(PY) benchmarks/cold_start.py --quick
	$(PY) benchmarks/serve.py --quick
	$(PY) benchmarks/peers.py --quick
	$(PY) benchmarks/label_studio_bridge.py --quick
