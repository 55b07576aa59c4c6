# clusterwatch: `make run` starts a server, `make test` runs the whole suite.
# Both work on a fresh Debian machine: they create the virtualenv and install what
# is missing (Python packages from PyPI, redis-tools/redis-server/exporter from apt).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 7379
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian package that provides each tool the tests drive.
SYSTEM_TOOLS := redis-server:redis-server redis-cli:redis-tools redis-benchmark:redis-tools \
	prometheus-redis-exporter:prometheus-redis-exporter tmux:tmux taskset:util-linux \
	openssl:openssl

.PHONY: run test lint typecheck unit bench bench-quick install system-deps clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

system-deps:
	@missing=""; \
	for entry in $(SYSTEM_TOOLS); do \
		tool=$${entry%%:*}; package=$${entry##*:}; \
		command -v $$tool >/dev/null 2>&1 || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

run: install
	$(PY) -m server serve --port $(PORT) --demo

lint: install
	$(PY) -m ruff check .

typecheck: install
	$(PY) -m mypy

unit: install
	$(PY) -m pytest tests -q -m "not integration"

test: install system-deps lint typecheck
	$(PY) -m pytest tests -q

bench: install system-deps
	PYTHONPATH=. $(PY) benchmarks/bench.py

bench-quick: install system-deps
	PYTHONPATH=. $(PY) benchmarks/bench.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
