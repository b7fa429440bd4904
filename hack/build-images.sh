#!/usr/bin/env bash
# `make images`: build the operator and load-pod images with podman and tag them exactly as the
# chart renders them by default (repository:appVersion). See docs/install.md ("Images").
#
# The base image (build ARG BASE) is, in this order: $KAR98K_BASE_IMAGE; the public
# python:3.11-slim-bookworm if it is already local or can be pulled; otherwise a Debian bookworm
# root filesystem made here with debootstrap (Python 3.11 from Debian) and `podman import`ed,
# cached under a key of its recipe, so only the first run pays for it (~1-2 min).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
# Debian's podman refuses its default ulimits on this kind of host: give them explicitly, no
# higher than our own hard limit (raising it is not permitted).
NOFILE=$(ulimit -Hn)
if [ "$NOFILE" = unlimited ] || [ "$NOFILE" -gt 65536 ]; then NOFILE=65536; fi
LIMITS=(--ulimit "nofile=$NOFILE:$NOFILE" --ulimit nproc=4096:4096)
PUBLIC_BASE=docker.io/library/python:3.11-slim-bookworm
SUITE=bookworm
MIRROR=${KAR98K_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3,python3-venv,ca-certificates
RECIPE_KEY=$(printf '%s\n' v1 "$SUITE" "$PACKAGES" | sha256sum | cut -c1-12)
LOCAL_BASE=localhost/kar98k-base:$SUITE-py3.11-$RECIPE_KEY

BASE_ROOT=
trap 'if [ -n "$BASE_ROOT" ]; then rm -rf "$BASE_ROOT"; fi' EXIT

say() { echo "make images: $*" >&2; }

# Each sets BASE (no command substitution, so `set -e` stops the script on any failure inside).
local_base() {
    BASE=$LOCAL_BASE
    if "${PODMAN[@]}" image exists "$LOCAL_BASE"; then
        return
    fi
    BASE_ROOT=$(mktemp -d /var/tmp/kar98k-base.XXXXXX)
    say "debootstrap --variant=minbase $SUITE (+ $PACKAGES) into $BASE_ROOT"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$BASE_ROOT" "$MIRROR" >&2
    chroot "$BASE_ROOT" apt-get clean
    rm -rf "$BASE_ROOT"/var/lib/apt/lists/* "$BASE_ROOT"/var/cache/apt/*.bin
    say "podman import -> $LOCAL_BASE"
    tar -C "$BASE_ROOT" -c . \
        | "${PODMAN[@]}" import --change 'CMD ["/bin/bash"]' - "$LOCAL_BASE" >/dev/null
    rm -rf "$BASE_ROOT"
    BASE_ROOT=
}

choose_base() {
    if [ -n "${KAR98K_BASE_IMAGE:-}" ]; then
        BASE=$KAR98K_BASE_IMAGE
    elif "${PODMAN[@]}" image exists "$PUBLIC_BASE"; then
        BASE=$PUBLIC_BASE
    elif "${PODMAN[@]}" image exists "$LOCAL_BASE"; then
        BASE=$LOCAL_BASE
    elif timeout 60 "${PODMAN[@]}" pull -q "$PUBLIC_BASE" >/dev/null 2>&1; then
        BASE=$PUBLIC_BASE
    else
        say "$PUBLIC_BASE cannot be pulled: making a local base"
        local_base
    fi
}

BASE=
choose_base
say "base $BASE"

# The exact references the chart renders by default: operator first, load pod second.
mapfile -t REFS < <(PYTHONPATH=tests "$PY" -c \
    'from cluster.harness import chart_images; print("\n".join(chart_images()))')
[ "${#REFS[@]}" -eq 2 ] || { say "could not read the chart's image references"; exit 1; }


# pip behind a TLS-intercepting proxy needs the host's CA bundle: mounted for the build only.
CERT=${KAR98K_PIP_CERT:-${PIP_CERT:-}}
BUILD_EXTRA=()
if [ -n "$CERT" ] && [ -f "$CERT" ]; then
    BUILD_EXTRA+=(-v "$CERT:/run/kar98k-pip-ca.crt:ro" --build-arg PIP_CERT=/run/kar98k-pip-ca.crt)
fi

for pair in "operator ${REFS[0]}" "loadpod ${REFS[1]}"; do
    set -- $pair
    start=$(date +%s)
    old=$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$2" 2>/dev/null || true)
    "${PODMAN[@]}" build --network=host "${LIMITS[@]}" --layers \
        --build-arg BASE="$BASE" "${BUILD_EXTRA[@]}" \
        -f "Dockerfile.$1" -t "$2" . >&2
    new=$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$2")
    if [ -n "$old" ] && [ "$old" != "$new" ]; then  # the replaced build, now untagged
        "${PODMAN[@]}" rmi "$old" >/dev/null 2>&1 || true
    fi
    say "$2 built in $(( $(date +%s) - start )) s, $("${PODMAN[@]}" image inspect --format '{{.Size}}' "$2") bytes"
done
