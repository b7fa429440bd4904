#!/usr/bin/env bash
# Builds a real Kubernetes control plane (kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl) and etcd from the Go module proxy, once, cached by version under the user's cache
# directory. Prints the directory holding the binaries on its last line.
#
# Why by hand: k8s.io/kubernetes replaces its k8s.io/* staging modules with ./staging paths that its
# module zip does not carry (and ships a go.work), so `go install` refuses it. We copy the module
# source, point each staging replace at the published k8s.io/<name> v0.<minor>.<patch> release and
# build with GOWORK=off GOFLAGS=-mod=mod. etcd's server module has ../api-style replaces: same swap.
set -euo pipefail

K8S_VERSION="${KAR98K_K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${KAR98K_ETCD_VERSION:-v3.6.17}"
CACHE_ROOT="${KAR98K_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kar98k}"
OUT="$CACHE_ROOT/controlplane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
BIN="$OUT/bin"
WANT=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd)

have_all() {
  local name
  for name in "${WANT[@]}"; do [ -x "$BIN/$name" ] || return 1; done
}

if have_all; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { echo "build-controlplane: 'go' is needed on PATH" >&2; exit 2; }
mkdir -p "$BIN"
# One builder at a time (parallel test workers, a second make): the others wait on the lock.
exec 9>"$OUT/.lock"
flock 9
if have_all; then
  echo "$BIN"
  exit 0
fi

work="$(mktemp -d "$OUT/src.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOWORK=off GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

# $1 module, $2 version -> copies the module source into $work/<dir> and prints that path.
module_copy() {
  local dir src
  src="$(go mod download -json "$1@$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  dir="$work/$(basename "$1")-$2"
  cp -r "$src" "$dir"
  chmod -R u+w "$dir"
  rm -f "$dir/go.work" "$dir/go.work.sum"
  echo "$dir"
}

# Rewrites `replace <mod> => ./relative/path` lines into `replace <mod> => <mod> <version>`,
# where <version> is given per module by the awk program in $2.
swap_replaces() {
  local gomod="$1" version_of="$2"
  python3 - "$gomod" "$version_of" <<'PY'
import re, sys
path, rule = sys.argv[1], sys.argv[2]
text = open(path).read()
def version(mod: str) -> str:
    kind, _, value = rule.partition("=")
    if kind == "k8s":           # k8s.io/<staging> v0.<minor>.<patch>
        return value
    if kind == "etcd":          # go.etcd.io/etcd/<x>/v3 at the etcd release
        return value
    raise SystemExit(f"unknown rule {rule}")
def fix(m: re.Match[str]) -> str:
    mod, target = m.group(1), m.group(2)
    if not target.startswith("."):
        return m.group(0)
    if "FORBIDDEN" in target:  # etcd's guard against depending on its root module: drop it
        return "// " + m.group(0).strip()
    return f"{mod} => {mod} {version(mod)}"
text = re.sub(r"^\s*([\w./-]+)\s*=>\s*(\S+)\s*$", lambda m: "\t" + fix(m), text, flags=re.M)
text = re.sub(
    r"^replace\s+([\w./-]+)\s*=>\s*(\S+)\s*$",
    lambda m: fix(m) if "FORBIDDEN" in m.group(2) else "replace " + fix(m),
    text,
    flags=re.M,
)
open(path, "w").write(text)
PY
}

echo "build-controlplane: building Kubernetes $K8S_VERSION (first time only, ~10 min)" >&2
k8s="$(module_copy k8s.io/kubernetes "$K8S_VERSION")"
staging="v0.${K8S_VERSION#v1.}"
swap_replaces "$k8s/go.mod" "k8s=$staging"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
ldflags="$ldflags -X k8s.io/component-base/version.gitMajor=1"
ldflags="$ldflags -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
mkdir -p "$work/out"
# One `go build` for the four commands: they share most packages, built once.
(cd "$k8s" && go build -trimpath -ldflags "$ldflags" -o "$work/out/" \
  ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler ./cmd/kubectl)
mv "$work/out/"* "$BIN/"

echo "build-controlplane: building etcd $ETCD_VERSION" >&2
etcd="$(module_copy go.etcd.io/etcd/server/v3 "$ETCD_VERSION")"
swap_replaces "$etcd/go.mod" "etcd=$ETCD_VERSION"
(cd "$etcd" && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" .)
mv "$BIN/etcd.tmp" "$BIN/etcd"

echo "$BIN"
