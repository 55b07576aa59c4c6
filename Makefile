# clusterwatch: `make run` starts a server, `make test` runs the whole suite.
# Both work on a fresh Debian machine: they create the virtualenv and install what
# is missing (Python packages from PyPI, redis-tools/redis-server/exporter from apt).

# The virtualenv's interpreter: the fastest CPython 3.11+ here (scripts/pick_python.py
# says which and why), unless PYTHON=... is given.
PYTHON ?=
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 7379
HTTP_PORT ?= 7380
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian package that provides each tool the tests drive.
SYSTEM_TOOLS := redis-server:redis-server redis-cli:redis-tools redis-benchmark:redis-tools \
	prometheus-redis-exporter:prometheus-redis-exporter tmux:tmux taskset:util-linux \
	openssl:openssl systemd-analyze:systemd iptables:iptables ip:iproute2

.PHONY: run test lint typecheck unit bench bench-quick install system-deps clean

$(VENV)/.installed: pyproject.toml
	@python="$(PYTHON)"; [ -n "$$python" ] || python=$$(python3 scripts/pick_python.py) && \
		echo "creating $(VENV) with $$python" && "$$python" -m venv $(VENV)
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
	@echo "clusterwatch: RESP on 127.0.0.1:$(PORT), HTTP on 127.0.0.1:$(HTTP_PORT), a simulated"
	@echo "3-master, 3-replica cluster on the embedded bus. Try, in another terminal:"
	@echo "  redis-cli -p $(PORT) cluster info"
	@echo "  redis-cli -p $(PORT) status services"
	@echo "  curl -s localhost:$(HTTP_PORT)/clusterStatus"
	@exec $(PY) -m clusterwatch serve --port $(PORT) --http-port $(HTTP_PORT) --demo

lint: install
	$(PY) -m ruff check .

typecheck: install
	$(PY) -m mypy

unit: install
	$(PY) -m pytest tests -q -m "not integration"

test: install system-deps lint typecheck
	$(PY) -m pytest tests -q

bench: install system-deps
	$(PY) -m benchmarks.bench

bench-quick: install system-deps
	$(PY) -m benchmarks.bench --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
