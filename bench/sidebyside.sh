#!/usr/bin/env bash
# The side-by-side build benchmark: the same workloads built by rbuild and
# its peers in one run, three scenarios each, every build timed as a whole
# process, the median of RUNS kept:
#   cold  the engine's build cache emptied first (base images stay in the
#         loopback registry)
#   noop  the same build again, nothing changed
#   edit  one source file changed (w1: the tools stage's version line), then
#         rebuilt
# Prints a markdown table of medians (seconds) and peer/rbuild ratios.
#   bench/sidebyside.sh [-n RUNS] [-t TOOLS] [-w WORKLOADS] RBUILD_BINARY
# TOOLS: comma list of rbuild, buildkit (dockerd 20.10's BuildKit 0.8),
# buildkit11 (buildkitd v0.11.6), buildah; default rbuild,buildkit,buildah.
# Needs scripts/peers-up.sh to have run; the contexts are made by
# bench/workloads/generate.py under $BENCH_DIR (default /var/tmp/rbuild-bench).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RUNS=3; TOOLS=rbuild,buildkit,buildah; WORKLOADS=w1-multistage,w2-bigcontext,w3-typical-app
while getopts "n:t:w:" o; do case $o in
  n) RUNS=$OPTARG ;; t) TOOLS=$OPTARG ;; w) WORKLOADS=$OPTARG ;; *) exit 2 ;; esac; done
shift $((OPTIND-1))
RBUILD=${1:?usage: bench/sidebyside.sh [-n RUNS] [-t TOOLS] [-w WORKLOADS] RBUILD_BINARY}
PEERS_DIR=${PEERS_DIR:-/var/tmp/rbuild-peers}
BENCH_DIR=${BENCH_DIR:-/var/tmp/rbuild-bench}
export DOCKER_HOST=${DOCKER_HOST:-unix://$PEERS_DIR/docker.sock} DOCKER_BUILDKIT=1
BUILDCTL=("$PEERS_DIR/bin/buildctl" --addr "unix://$PEERS_DIR/buildkitd.sock")
[ -d "$BENCH_DIR/w1-multistage" ] || python3 "$HERE/workloads/generate.py" "$BENCH_DIR" >/dev/null

# build TOOL CONTEXT: one build, output discarded.
build() {
  local tag
  tag=bench/$(basename "$2")
  case $1 in
    rbuild)     "$RBUILD" build -q -t "$tag" "$2" ;;
    buildkit)   /usr/bin/docker build -q -t "$tag" "$2" ;;
    buildkit11) "${BUILDCTL[@]}" build --frontend dockerfile.v0 --local context="$2" \
                  --local dockerfile="$2" --output "type=image,name=$tag" ;;
    buildah)    buildah bud --runtime runc --layers --jobs "$(nproc)" -q -t "${tag/\//-}" "$2" ;;
  esac >/dev/null 2>&1
}

# empty_cache TOOL
empty_cache() {
  case $1 in
    rbuild)     "$RBUILD" prune --all --force ;;
    buildkit)   /usr/bin/docker builder prune -af ;;
    buildkit11) "${BUILDCTL[@]}" prune --all ;;
    buildah)    buildah rmi --all --force ;;
  esac >/dev/null 2>&1 || true
}

# edit CONTEXT: the workload's one-file change.
edit() {
  case $(basename "$1") in
    w1-multistage)  sed -i "s/echo tools-v[0-9]*/echo tools-v$RANDOM$RANDOM/" "$1/Dockerfile" ;;
    w2-bigcontext)  echo "/* edit $RANDOM$RANDOM */" >>"$1/src/d007/f00007.txt" ;;
    w3-typical-app) echo "/* edit $RANDOM$RANDOM */" >>"$1/src/mod03/unit0003.c" ;;
  esac
}

# seconds CMD…: the wall time of CMD, or FAIL.
seconds() {
  local start
  start=$(date +%s.%N)
  "$@" || { echo FAIL; return; }
  echo "$(date +%s.%N) - $start" | bc
}
. "$(dirname "${BASH_SOURCE[0]}")/lib/timing.sh"

declare -A MEDIAN
IFS=, read -ra TOOL_LIST <<<"$TOOLS"
IFS=, read -ra WORKLOAD_LIST <<<"$WORKLOADS"
for w in "${WORKLOAD_LIST[@]}"; do
  for t in "${TOOL_LIST[@]}"; do
    for s in cold noop edit; do
      times=()
      for _ in $(seq "$RUNS"); do
        case $s in
          cold) empty_cache "$t" ;;
          noop) build "$t" "$BENCH_DIR/$w" || true ;;
          edit) build "$t" "$BENCH_DIR/$w" || true; edit "$BENCH_DIR/$w" ;;
        esac
        times+=("$(seconds build "$t" "$BENCH_DIR/$w")")
      done
      if printf '%s\n' "${times[@]}" | grep -q FAIL; then MEDIAN[$w,$t,$s]=FAIL
      else MEDIAN[$w,$t,$s]=$(printf '%s\n' "${times[@]}" | median); fi
      echo "$w $t $s ${MEDIAN[$w,$t,$s]}" >&2
    done
  done
done

ref=${TOOL_LIST[0]}
printf '| workload | scenario |'
for t in "${TOOL_LIST[@]}"; do printf ' %s s |' "$t"; done
for t in "${TOOL_LIST[@]:1}"; do printf ' %s/%s |' "$t" "$ref"; done
printf '\n|---|---|'
for _ in "${TOOL_LIST[@]}" "${TOOL_LIST[@]:1}"; do printf -- '---|'; done
echo
for w in "${WORKLOAD_LIST[@]}"; do
  for s in cold noop edit; do
    printf '| %s | %s |' "$w" "$s"
    for t in "${TOOL_LIST[@]}"; do printf ' %s |' "${MEDIAN[$w,$t,$s]}"; done
    for t in "${TOOL_LIST[@]:1}"; do
      peer=${MEDIAN[$w,$t,$s]} own=${MEDIAN[$w,$ref,$s]}
      if [[ $peer == FAIL || $own == FAIL ]]; then printf ' - |'
      else printf ' %.2f |' "$(echo "$peer / $own" | bc -l)"; fi
    done
    echo
  done
done
