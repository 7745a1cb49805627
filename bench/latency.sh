#!/usr/bin/env bash
# Sandbox start-up latency, side by side in one run (median of RUNS, ratio
# peer/rbuild):
#   run    `rbuild run --rm IMAGE true` vs `runc run` and `crun run` of the
#          same busybox image, unpacked by umoci (podman is left out: on
#          this machine's hybrid cgroups and rlimits it cannot start a
#          container at all)
#   RUN    a one-RUN build with --no-cache (`FROM busybox` + `RUN true`) vs
#          BuildKit (dockerd from scripts/peers-up.sh) and buildah
#   [BASELINE=OLD_RBUILD] [BENCH_TMP=DIR] bench/latency.sh RBUILD_BINARY [RUNS]
#          (BASELINE: the same start-ups of an older binary beside this one;
#          BENCH_TMP: where the stores go, /var/tmp by default; a tmpfs such
#          as /tmp leaves the store's fsyncs out, which on a disk busy with
#          other work outweigh the sandbox)
# Needs busybox-static, umoci, runc, crun; the build rows also need
# the peers (registry on 127.0.0.1:5000 with busybox, dockerd, buildah).
set -euo pipefail
RBUILD=$(realpath "$1"); RUNS=${2:-21}
HERE=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d "${BENCH_TMP:-/var/tmp}/rbuild-latency.XXXXXX")
STORE=$TMP/store
trap 'rm -rf "$TMP"' EXIT
export DOCKER_HOST=${DOCKER_HOST:-unix:///var/tmp/rbuild-peers/docker.sock} DOCKER_BUILDKIT=1

. "$(dirname "${BASH_SOURCE[0]}")/lib/timing.sh"
# RUNS timings of a command; prints the median, or FAIL.
bench() {
  local xs=() t0
  "$@" >/dev/null 2>&1 || { echo FAIL; return; }   # warm-up, and a check
  for _ in $(seq "$RUNS"); do
    t0=$(now); "$@" >/dev/null 2>&1 || { echo FAIL; return; }
    xs+=("$(echo "$(now) - $t0" | bc)")
  done
  printf '%s\n' "${xs[@]}" | median
}
ratio() { if [[ $1 == FAIL || $2 == FAIL ]]; then echo -; else echo "scale=2; $2 / $1" | bc; fi; }
row() { printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$(ratio "$2" "$4")"; }

# The image: busybox-static, built by rbuild into a private store.
mkdir -p "$TMP/ctx"
cp -r "$HERE/testdata/busybox/." "$TMP/ctx/"
cp "$(command -v busybox)" "$TMP/ctx/busybox"
"$RBUILD" --root "$STORE" build -q -t latency "$TMP/ctx" >/dev/null
umoci unpack --image "$STORE:latency" "$TMP/bundle" >/dev/null 2>&1
jq '.process.args=["true"] | .process.terminal=false' "$TMP/bundle/config.json" >"$TMP/c.json"
mv "$TMP/c.json" "$TMP/bundle/config.json"
chmod 755 "$TMP/bundle/rootfs"

n=0
runc_run() { n=$((n + 1)); runc run -b "$TMP/bundle" "rbuild-latency-$$-$n"; }
# crun refuses hybrid cgroup hosts; give it a cgroup2 view and no cgroup
# management, as `rbuild run --runtime crun` does.
crun_run() {
  n=$((n + 1))
  unshare --mount --propagation private -- sh -c \
    'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec crun --cgroup-manager=disabled run -b "$1" "$2"' \
    sh "$TMP/bundle" "rbuild-latency-$$-$n"
}

r_run=$(bench "$RBUILD" --root "$STORE" run --rm latency true)
echo "## Sandbox latency (median seconds of $RUNS; ratio peer/rbuild)"
echo
echo "| scenario | rbuild s | peer | peer s | peer/rbuild |"
echo "|---|---|---|---|---|"
row "run --rm IMAGE true" "$r_run" runc "$(bench runc_run)"
row "run --rm IMAGE true" "$r_run" crun "$(bench crun_run)"

# A trivial RUN step: FROM busybox + RUN true, with --no-cache.
if curl -fsS http://127.0.0.1:5000/v2/busybox/tags/list >/dev/null 2>&1; then
  mkdir -p "$TMP/run"
  printf 'FROM 127.0.0.1:5000/busybox\nRUN true\n' >"$TMP/run/Dockerfile"
  r_build=$(bench "$RBUILD" --root "$STORE" build -q --no-cache "$TMP/run")
  row "build: FROM + RUN true, --no-cache" "$r_build" BuildKit \
    "$(bench /usr/bin/docker build -q --no-cache "$TMP/run")"
  row "build: FROM + RUN true, --no-cache" "$r_build" buildah \
    "$(bench buildah bud --runtime runc --no-cache -q "$TMP/run")"
fi

# Before/after: with BASELINE=/path/to/an/older/rbuild, the same start-ups
# of both binaries side by side (each on a store of its own): `run --rm
# IMAGE true`, and a one-RUN build from the image in the store (no
# registry needed) with the default network and with --network=none.
if [[ -n ${BASELINE:-} ]]; then
  BASE=$(realpath "$BASELINE"); BSTORE=$TMP/store-baseline
  "$BASE" --root "$BSTORE" build -q -t latency "$TMP/ctx" >/dev/null
  mkdir -p "$TMP/local" "$TMP/local-none"
  printf 'FROM latency\nRUN true\n' >"$TMP/local/Dockerfile"
  printf 'FROM latency\nRUN --network=none true\n' >"$TMP/local-none/Dockerfile"
  echo
  echo "## Before/after (median seconds of $RUNS; ratio rbuild/baseline)"
  echo
  echo "| scenario | baseline s | rbuild s | rbuild/baseline |"
  echo "|---|---|---|---|"
  # Alternated run by run (baseline, then this binary), so that a change
  # of load during the measurement falls on both alike.
  pair() {
    local bs=() as=() t0
    "$BASE" --root "$BSTORE" "${@:2}" >/dev/null 2>&1 || { echo "| $1 | FAIL | | |"; return; }
    "$RBUILD" --root "$STORE" "${@:2}" >/dev/null 2>&1 || { echo "| $1 | | FAIL | |"; return; }
    for _ in $(seq "$RUNS"); do
      t0=$(now); "$BASE" --root "$BSTORE" "${@:2}" >/dev/null 2>&1
      bs+=("$(echo "$(now) - $t0" | bc)")
      t0=$(now); "$RBUILD" --root "$STORE" "${@:2}" >/dev/null 2>&1
      as+=("$(echo "$(now) - $t0" | bc)")
    done
    local b a
    b=$(printf '%s\n' "${bs[@]}" | median)
    a=$(printf '%s\n' "${as[@]}" | median)
    printf '| %s | %s | %s | %s |\n' "$1" "$b" "$a" "$(ratio "$b" "$a")"
  }
  pair "run --rm IMAGE true" run --rm latency true
  pair "build: FROM local + RUN true, --no-cache" build -q --no-cache "$TMP/local"
  pair "build: FROM local + RUN --network=none true, --no-cache" \
    build -q --no-cache "$TMP/local-none"
fi
