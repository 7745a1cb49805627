#!/usr/bin/env bash
# Per-step overhead (issue 19): a Dockerfile of STEPS trivial RUN steps
# (`RUN true N`) on a busybox base the script builds, medians of RUNS:
#   cold    `build --no-cache` of all the steps (every RUN runs)
#   base    `build --no-cache` of the same Dockerfile without the RUNs (the
#           build's fixed cost: load, the base, export)
#   true    the commands themselves: STEPS x `/bin/true`
#   unshare STEPS x `unshare --mount --pid --fork true` (a namespaced
#           process start, about the floor a sandbox can go down to)
#   no-op   a rebuild with every step cached
# and per step: (cold - base - true) / STEPS.
#   [BASELINE=OLD_RBUILD] [BENCH_TMP=DIR] bench/steps.sh RBUILD_BINARY [RUNS] [STEPS]
# BASELINE: an older binary measured beside this one, run for run
# alternated, each with a store of its own; BENCH_TMP: where the stores go
# (/var/tmp by default; a tmpfs such as /tmp leaves the store's fsyncs out).
# Needs busybox-static and util-linux's unshare; as root.
set -euo pipefail
shopt -s inherit_errexit   # a failed build fails the script, not just its timing
RUNS=${2:-5}; STEPS=${3:-200}
BINS=("$(realpath "$1")")
[[ -n ${BASELINE:-} ]] && BINS+=("$(realpath "$BASELINE")")
HERE=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d "${BENCH_TMP:-/var/tmp}/rbuild-steps.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

. "$(dirname "${BASH_SOURCE[0]}")/lib/timing.sh"
ms() { echo "scale=1; $1 * 1000 / 1" | bc; }
# One timing of a command, in seconds.
timed() { local t0; t0=$(now); "$@" >/dev/null; echo "$(now) - $t0" | bc; }
# rb B ARGS: binary number B (0 new, 1 baseline) on its own store.
rb() { local b=$1; shift; "${BINS[$b]}" --root "$TMP/store$b" "$@"; }

mkdir -p "$TMP/base" "$TMP/steps" "$TMP/none"
cp -r "$HERE/testdata/busybox/." "$TMP/base/"
cp "$(command -v busybox)" "$TMP/base/busybox"
echo "FROM steps-base" >"$TMP/none/Dockerfile"
{ echo "FROM steps-base"; for i in $(seq "$STEPS"); do echo "RUN true $i"; done; } \
  >"$TMP/steps/Dockerfile"
trues() { for _ in $(seq "$STEPS"); do /bin/true; done; }
unshares() { for _ in $(seq "$STEPS"); do unshare --mount --pid --fork true; done; }

# Every scenario once per run, the binaries alternated within it, after
# one warm-up round; each timing goes to a file per (scenario, binary).
round() {
  local b
  for b in "${!BINS[@]}"; do
    timed rb "$b" build -q --no-cache -t steps "$TMP/steps" >>"$TMP/t/cold$b"
    timed rb "$b" build -q --no-cache -t steps-none "$TMP/none" >>"$TMP/t/base$b"
    timed rb "$b" build -q -t steps "$TMP/steps" >>"$TMP/t/noop$b"
  done
  timed trues >>"$TMP/t/true"
  timed unshares >>"$TMP/t/unshare"
}
for b in "${!BINS[@]}"; do rb "$b" build -q -t steps-base "$TMP/base" >/dev/null; done
mkdir "$TMP/t"
round
rm "$TMP"/t/*
for _ in $(seq "$RUNS"); do round; done
med() { median <"$TMP/t/$1"; }

true_t=$(med true); unshare_t=$(med unshare)
echo "$STEPS RUN steps, median of $RUNS, stores in ${BENCH_TMP:-/var/tmp}:"
echo
header="| scenario, ms | rbuild |"; rule="|---|---:|"
[[ ${#BINS[@]} -gt 1 ]] && { header="| scenario, ms | rbuild | baseline | rbuild/baseline |"; rule="|---|---:|---:|---:|"; }
echo "$header"; echo "$rule"
row() {
  local name=$1 a=$2 b=${3:-}
  if [[ -n $b ]]; then
    echo "| $name | $(ms "$a") | $(ms "$b") | $(echo "scale=2; $a / $b" | bc) |"
  else
    echo "| $name | $(ms "$a") |"
  fi
}
per_step() { echo "($(med "cold$1") - $(med "base$1") - $true_t) / $STEPS" | bc -l; }
others() { [[ ${#BINS[@]} -gt 1 ]] && med "$1"1 || true; }
row "cold build (--no-cache)" "$(med cold0)" "$(others cold)"
row "the same without the RUNs" "$(med base0)" "$(others base)"
row "**per-step overhead**: (cold - without RUNs - commands) / $STEPS" "$(per_step 0)" \
  "$([[ ${#BINS[@]} -gt 1 ]] && per_step 1 || true)"
row "**no-op rebuild**" "$(med noop0)" "$(others noop)"
echo
echo "The commands, $STEPS x /bin/true: $(ms "$true_t") ms; $STEPS x unshare --mount --pid --fork true: $(ms "$unshare_t") ms ($(ms "$(echo "$unshare_t / $STEPS" | bc -l)") ms each)."
