# Two entry points a newcomer needs: `make demo` and `make test`.
# Both create .venv on first use and install the project with every extra it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HELM_VERSION := v3.21.4
HELM := $(BIN)/helm

.PHONY: setup demo test lint typecheck bench bench-quick soak clean controlplane prometheus images podman-tools

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# helm renders the chart in tests; built from the Go module proxy (needs `go` on PATH).
$(HELM): | $(STAMP)
	GOBIN=$(abspath $(BIN)) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

# A real Kubernetes control plane (kube-apiserver, controller-manager, scheduler, kubectl, etcd)
# for the operator suite, built once from the Go module proxy and cached under ~/.cache/kar98k
# (about 10 minutes cold on 2 cores; instant afterwards). See docs/testing.md.
controlplane:
	bash tests/cluster/build-controlplane.sh >/dev/null

# A real Prometheus server and promtool (v0.316.0) for the observability tests, built once from
# the Go module proxy with `go install` and cached under ~/.cache/kar98k (a few minutes cold).
prometheus:
	bash tests/cluster/build-prometheus.sh >/dev/null

# podman, debootstrap and runc from Debian, installed only when one is missing (root, apt-get).
podman-tools:
	@if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null \
	    || ! command -v runc >/dev/null; then \
	  if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	    echo "make images: needs podman, debootstrap and runc (apt-get install as root)" >&2; \
	    exit 1; \
	  fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq podman debootstrap runc >/dev/null; \
	fi

# The operator and load-pod images, tagged as the chart renders them by default
# (ghcr.io/kar98k/kar98k-{operator,loadpod}:<appVersion>). Cached: seconds when nothing changed;
# the first run makes a Debian base with debootstrap when python:3.11-slim-bookworm cannot be
# pulled. See docs/install.md ("Images").
images: $(STAMP) podman-tools
	bash hack/build-images.sh

demo: $(STAMP)
	$(BIN)/kar98k demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy loadpod/kar98k_loadpod operator/kar98k operator/kar98k_operator

# Reports its own wall time (images, lint, typecheck and the suite); `PYTEST_ARGS='-m "not slow"'`
# leaves out the tests that run real processes for seconds. A failed `make images` does not stop
# the suite: tests/operator/test_operator_images.py then fails and says why.
test: $(STAMP) $(HELM) controlplane prometheus
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory images \
	  || echo "make test: make images failed; test_operator_images.py will fail and say why" >&2; \
	$(MAKE) --no-print-directory lint typecheck && $(BIN)/pytest -q $(PYTEST_ARGS); \
	status=$$?; \
	echo "make test: $$(( $$(date +%s) - start )) s wall (images, lint, typecheck, pytest), exit $$status"; \
	exit $$status

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(BIN)/python bench/run_all.py --quick $(BENCH_ARGS)

# Ten minutes of spikes and noise through two load pods: RSS, fds and achieved/target per minute
# (docs/reliability.md). SOAK_ARGS='--duration 30m' for longer.
soak: $(STAMP)
	$(BIN)/python bench/soak.py --json bench/results/soak.json $(SOAK_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
