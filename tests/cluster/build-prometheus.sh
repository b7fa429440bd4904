#!/usr/bin/env bash
# Builds a real Prometheus server and promtool from the Go module proxy, once, cached by version
# under the user's cache directory. Prints the directory holding the binaries on its last line.
#
# `go install` works as is here (unlike k8s.io/kubernetes, prometheus' go.mod has no local
# replaces). Without the `builtinassets` build tag the server has no web UI, only its HTTP API:
# all the tests use. `remove_all_sd` (Prometheus' documented tag) leaves out every optional
# service discovery (AWS, Azure, GCE, Kubernetes, ...: most of the build) and keeps static,
# file and HTTP discovery, which is what the tests configure.
set -euo pipefail

PROM_VERSION="${KAR98K_PROMETHEUS_VERSION:-v0.316.0}"
CACHE_ROOT="${KAR98K_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kar98k}"
OUT="$CACHE_ROOT/prometheus/$PROM_VERSION"
BIN="$OUT/bin"
WANT=(prometheus promtool)

have_all() {
  local name
  for name in "${WANT[@]}"; do [ -x "$BIN/$name" ] || return 1; done
}

if have_all; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { echo "build-prometheus: 'go' is needed on PATH" >&2; exit 2; }
mkdir -p "$OUT"
# One builder at a time (parallel test workers, a second make): the others wait on the lock.
exec 9>"$OUT/.lock"
flock 9
if have_all; then
  echo "$BIN"
  exit 0
fi

echo "build-prometheus: building Prometheus $PROM_VERSION (first time only, a few minutes)" >&2
tmp="$(mktemp -d "$OUT/bin.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" GOTOOLCHAIN=local CGO_ENABLED=0 go install -trimpath -tags remove_all_sd -ldflags "-s -w" \
  "github.com/prometheus/prometheus/cmd/prometheus@$PROM_VERSION" \
  "github.com/prometheus/prometheus/cmd/promtool@$PROM_VERSION"
mkdir -p "$BIN"
for name in "${WANT[@]}"; do mv "$tmp/$name" "$BIN/$name"; done

echo "$BIN"
