# redkeep: the two commands of the quick start.
#   make up    installs what is missing, builds (release), runs `redkeep up`
#   make test  installs what is missing, runs fmt check, clippy and every test
SHELL := /bin/bash
CARGO ?= cargo
# Debian/Ubuntu packages redkeep drives or tests with (chromium: the stats page's browser test;
# prometheus, prometheus-alertmanager: the monitoring rules' and alert routing's tests).
PACKAGES := redis-server redis-tools keepalived iproute2 procps chromium prometheus prometheus-alertmanager
# python3-venv: the venv of the cluster clients the proxy's tests run (client-deps below).
PACKAGES += python3 python3-venv
# The engines' validators (`redkeep deploy render`, crates/redkeep/tests/engines.rs): the Swarm
# stack is checked by docker-compose (Debian), the Kubernetes manifests by kubernetes-validate
# (PyPI, pinned) and kubectl (not a Debian package: installed from Kubernetes' own channels).
PACKAGES += docker-compose
KUBERNETES_VALIDATE := 1.37.0
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
UP_ARGS ?=

# Cargo caches rustc's answers, failures included, in TARGET/.rustc_info.json: a failed probe
# would be replayed by every later build with a kept target dir. Asking rustc afresh costs
# ~50 ms a command.
export CARGO_CACHE_RUSTC_INFO := 0

# The steps run in the order written, also under `make -j` (tests need the packages installed).
.NOTPARALLEL:

.PHONY: up test deps system-deps client-deps build check-toolchain check-dev-null fmt-check clippy unit engine-validators

up: deps build
	./target/release/redkeep up $(UP_ARGS)

test: deps check-toolchain check-dev-null fmt-check clippy unit

build: check-toolchain
	$(CARGO) build --release --locked -p redkeep

deps: system-deps client-deps

# Installs only the packages that are missing; apt-get update runs first when any is.
system-deps:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "All packages present: $(PACKAGES)"; fi
	@$(MAKE) --no-print-directory engine-validators

# kubernetes-validate from PyPI at the pinned version; kubectl must be on PATH already.
engine-validators:
	@if [ "$$(kubernetes-validate --version 2>/dev/null)" != "$(KUBERNETES_VALIDATE)" ]; then \
	  echo "Installing kubernetes-validate==$(KUBERNETES_VALIDATE)"; \
	  $(PYTHON) -m pip install --quiet "kubernetes-validate==$(KUBERNETES_VALIDATE)"; \
	fi
	@command -v kubectl >/dev/null || { echo "kubectl not found: install it (https://kubernetes.io/docs/tasks/tools/); the manifests' tests need it" >&2; exit 1; }

check-toolchain:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs) and run make again" >&2; exit 1; }

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --locked --workspace </dev/null
	@$(MAKE) --no-print-directory check-dev-null

# /dev/null must be the character device, before the tests and after them. A test once saved a
# plan with `--plan-file /dev/null` by write-and-rename, as root: /dev/null became a regular
# file, collected what was written to it, and the next `rustc -` probe (stdin /dev/null)
# compiled that text: "failed to run `rustc` to learn about target-specific information".
check-dev-null:
	@[ -c /dev/null ] || { echo "/dev/null is not the null device (a regular file?): restore it as root with" \
	  "'rm -f /dev/null && mknod -m 666 /dev/null c 1 3'; if this follows the tests, one of them replaced it" >&2; exit 1; }

# Cluster-aware clients the proxy's tests run against it (crates/proxy/tests/clients, see
# cluster_clients.rs): redis-py pinned in requirements.txt, in a venv there; ioredis and
# node-redis from the committed package-lock.json. Each step reruns only when its pin changes.
CLIENTS_DIR := crates/proxy/tests/clients

client-deps: $(CLIENTS_DIR)/.venv/installed $(CLIENTS_DIR)/node_modules/.package-lock.json

$(CLIENTS_DIR)/.venv/installed: $(CLIENTS_DIR)/requirements.txt
	python3 -m venv $(CLIENTS_DIR)/.venv
	$(CLIENTS_DIR)/.venv/bin/pip install -q --disable-pip-version-check -r $<
	touch $@

# nodejs and npm come from Debian when no node is installed (NodeSource's nodejs has npm).
$(CLIENTS_DIR)/node_modules/.package-lock.json: $(CLIENTS_DIR)/package-lock.json
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends nodejs npm; }
	cd $(CLIENTS_DIR) && npm ci --no-audit --no-fund
