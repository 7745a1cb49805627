#!/usr/bin/env bash
# The w2 one-file edit against the machine's limit (issue 19): rbuild's
# rebuild of bench/workloads' w2-bigcontext after one source file changed,
# beside `tar -cf - SELECTION | sha256sum`, the naive cost of producing and
# hashing the COPY's layer (SELECTION: the context minus what its
# .dockerignore drops, node_modules/ and *.tmp). Each round appends a line
# to src/d007/f00007.txt (as bench/sidebyside.sh's edit does), then times,
# one after the other: each binary's edit build, and the tar | sha256sum.
# Medians of RUNS rounds, after one warm-up round.
#   [BASELINE=OLD_RBUILD] [BENCH_TMP=DIR] [W2_CONTEXT=DIR] bench/w2edit.sh RBUILD_BINARY [RUNS]
# BASELINE: an older binary measured beside this one, run for run
# alternated, each with a store of its own. BENCH_TMP: where the stores
# (and the generated context) go, /var/tmp (disk) by default; a tmpfs such
# as /tmp leaves the disk's writes out. W2_CONTEXT: an already generated
# w2-bigcontext directory to use (it is edited) instead of generating one.
# The base image is busybox made here from testdata/busybox (no registry).
# Needs busybox-static and python3; as root.
set -euo pipefail
shopt -s inherit_errexit   # a failed build fails the script, not just its timing
RUNS=${2:-5}
BINS=("$(realpath "$1")")
[[ -n ${BASELINE:-} ]] && BINS+=("$(realpath "$BASELINE")")
HERE=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d "${BENCH_TMP:-/var/tmp}/rbuild-w2edit.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

. "$(dirname "${BASH_SOURCE[0]}")/lib/timing.sh"
# One timing of a command, in seconds.
timed() { local t0; t0=$(now); "$@" >/dev/null; echo "$(now) - $t0" | bc; }
# rb B ARGS: binary number B (0 new, 1 baseline) on its own store.
rb() { local b=$1; shift; "${BINS[$b]}" --root "$TMP/store$b" "$@"; }

CTX=${W2_CONTEXT:-}
if [[ -z $CTX ]]; then
  python3 "$HERE/bench/workloads/generate.py" "$TMP/gen" >/dev/null
  CTX=$TMP/gen/w2-bigcontext
fi
mkdir -p "$TMP/base"
cp -r "$HERE/testdata/busybox/." "$TMP/base/"
cp "$(command -v busybox)" "$TMP/base/busybox"
# The workload's Dockerfile on the local base instead of the registry's.
sed 's|^FROM .*|FROM w2edit-base|' "$HERE/bench/workloads/w2-bigcontext/Dockerfile" >"$TMP/Dockerfile"

edit() { echo "/* edit $RANDOM$RANDOM */" >>"$CTX/src/d007/f00007.txt"; }
build() { rb "$1" build -q -f "$TMP/Dockerfile" -t w2edit "$CTX"; }
tar_sha() { tar -cf - -C "$CTX" --exclude=./node_modules --exclude='*.tmp' . | sha256sum; }

for b in "${!BINS[@]}"; do
  rb "$b" build -q -t w2edit-base "$TMP/base" >/dev/null
  build "$b" >/dev/null
done
mkdir "$TMP/t"
round() {
  local b
  for b in "${!BINS[@]}"; do
    edit
    timed build "$b" >>"$TMP/t/edit$b"
  done
  timed tar_sha >>"$TMP/t/tar"
}
round
rm "$TMP"/t/*
for _ in $(seq "$RUNS"); do round; done
med() { median <"$TMP/t/$1"; }

tar_t=$(med tar)
echo "w2-bigcontext one-file edit, median of $RUNS, stores in ${BENCH_TMP:-/var/tmp}, load average $(cut -d' ' -f1-3 /proc/loadavg):"
echo
echo "| | edit build, s | tar \\| sha256sum, s | edit / tar |"
echo "|---|---:|---:|---:|"
names=(rbuild baseline)
for b in "${!BINS[@]}"; do
  e=$(med "edit$b")
  printf '| %s | %.3f | %.3f | %.2f |\n' "${names[$b]}" "$e" "$tar_t" "$(echo "$e / $tar_t" | bc -l)"
done
