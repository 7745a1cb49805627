#!/usr/bin/env bash
# Every speed claim from one command, side by side with the peers:
#   bench/run.sh [-n RUNS] [-w WORKLOADS]
# Builds rbuild in release mode, starts the peers (scripts/peers-up.sh: a
# registry on 127.0.0.1:5000, dockerd with BuildKit, buildkitd 0.11.6,
# buildah), runs the side-by-side runner bench/sidebyside.sh (cold, no-op and
# one-file-edit builds of the workloads of bench/workloads/, whose contexts
# bench/workloads/generate.py makes), then the extras below, and writes the
# tables to bench/results/. From ../shared it needs only BuildKit 0.11.6's
# release archive (or $BUILDKIT_ARCHIVE), which no package registry serves.
#   push/pull  the w3 image to the local registry and back into an empty
#              store: rbuild vs skopeo (extras.sh), and a 1 GiB image
#              (transfer.sh)
#   latency    `rbuild run --rm IMAGE true` vs runc and crun, and a one-RUN
#              build vs BuildKit and buildah (latency.sh)
#   memory     peak RSS of each engine's process per scenario (rbuild, buildah;
#              BuildKit runs inside dockerd and is reported as not measured)
# A peer that is not available is skipped, and the table says so.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=3; WORKLOADS="w1-multistage,w2-bigcontext,w3-typical-app"
while getopts "n:w:" o; do case $o in
  n) RUNS=$OPTARG ;; w) WORKLOADS=$OPTARG ;; *) exit 2 ;; esac; done
OUT=bench/results; mkdir -p "$OUT"
stamp=$(date -u +%Y-%m-%dT%H:%MZ)

cargo build --release --quiet
RBUILD=$PWD/target/release/rbuild
bash scripts/peers-up.sh >/dev/null

{
  echo "# rbuild benchmark, $stamp"
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)."
  echo "Command: \`bench/run.sh -n $RUNS -w $WORKLOADS\`"
  echo
  echo "## Builds (median seconds of $RUNS; ratios peer/rbuild)"
  echo
  bash bench/sidebyside.sh -n "$RUNS" -w "$WORKLOADS" "$RBUILD" 2>/dev/null
  echo
  bash bench/extras.sh "$RBUILD" "$RUNS"
  echo
  bash bench/latency.sh "$RBUILD" 21
  echo
  bash bench/transfer.sh "$RBUILD" "$RUNS"
} | tee "$OUT/latest.md"
