#!/usr/bin/env bash
# The CI scenario of the remote build cache, rbuild vs BuildKit v0.11.6
# (buildkitd + buildctl, `--export-cache/--import-cache type=registry`) on
# the peers' loopback registry, in one run, medians of RUNS:
#   A      machine A, empty cache: build, export the cache (mode=max)
#   B-same machine B, empty store: build with the cache, push the image;
#          inputs unchanged
#   B-edit the same with one source file changed (the workload's edit)
# for w1 and w3, with the blob bytes the registry sent during B (its access
# log: GET …/blobs/… answers), and the cost of a mode=max export on a w1
# cold build (no export, zstd-3 default, gzip-6).
# Each tool uses its default cache compression (rbuild zstd-3, BuildKit
# gzip). BuildKit's machine B is the same buildkitd after `prune --all`.
#   bench/remote-cache.sh [-n RUNS] [-w WORKLOADS] RBUILD_BINARY
# Needs scripts/peers-up.sh to have run.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RUNS=3; WORKLOADS=w1-multistage,w3-typical-app
while getopts "n:w:" o; do case $o in
  n) RUNS=$OPTARG ;; w) WORKLOADS=$OPTARG ;; *) exit 2 ;; esac; done
shift $((OPTIND-1))
RBUILD=$(realpath "${1:?usage: bench/remote-cache.sh [-n RUNS] [-w WORKLOADS] RBUILD_BINARY}")
PEERS_DIR=${PEERS_DIR:-/var/tmp/rbuild-peers}
REG=127.0.0.1:5000
LOG=$PEERS_DIR/registry/log
BUILDCTL=("$PEERS_DIR/bin/buildctl" --addr "unix://$PEERS_DIR/buildkitd.sock")
TMP=$(mktemp -d /var/tmp/rbuild-remote-cache.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
python3 "$HERE/workloads/generate.py" "$TMP/src" >/dev/null
TAG=$(date +%s)

seconds() {
  local start
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || { echo FAIL; return; }
  echo "$(date +%s.%N) - $start" | bc
}
. "$(dirname "${BASH_SOURCE[0]}")/lib/timing.sh"
# sent_since LINE: blob bytes the registry sent after log line LINE.
sent_since() {
  tail -n +"$(($1 + 1))" "$LOG" | awk '$6 == "\"GET" && $7 ~ /\/blobs\/sha256:/ && $9 ~ /^2/ {s += $10} END {print s + 0}'
}
log_lines() { wc -l <"$LOG"; }
edit() {
  case $(basename "$1") in
    w1-multistage)  sed -i "s/echo tools-v[0-9]*/echo tools-v$RANDOM$RANDOM/" "$1/Dockerfile" ;;
    w3-typical-app) echo "/* edit $RANDOM$RANDOM */" >>"$1/src/mod03/unit0003.c" ;;
  esac
}

# empty TOOL STORE: an empty build cache (outside the timing).
empty() {
  case $1 in
    rbuild) rm -rf "$2" ;;
    buildkit11) "${BUILDCTL[@]}" prune --all >/dev/null ;;
  esac
}

# machine_a TOOL CTX CACHE: a cold build exporting the cache.
machine_a() {
  case $1 in
    rbuild) "$RBUILD" --root "$TMP/a" build -q -t app --cache-to "type=registry,ref=$3,mode=max" "$2" ;;
    buildkit11) "${BUILDCTL[@]}" build --frontend dockerfile.v0 --local context="$2" --local dockerfile="$2" \
              --output type=image,name=bench/a --export-cache "type=registry,ref=$3,mode=max" ;;
  esac
}

# machine_b TOOL CTX CACHE IMAGE: an empty store builds from the cache and pushes.
machine_b() {
  case $1 in
    rbuild) "$RBUILD" --root "$TMP/b" build -q -t "$4" --push --cache-from "$3" "$2" ;;
    buildkit11) "${BUILDCTL[@]}" build --frontend dockerfile.v0 --local context="$2" --local dockerfile="$2" \
              --output "type=image,name=$4,push=true" --import-cache "type=registry,ref=$3" ;;
  esac
}

declare -A T B S
for w in ${WORKLOADS//,/ }; do
  for tool in rbuild buildkit11; do
    for run in $(seq "$RUNS"); do
      ctx=$TMP/$tool-$run/$w
      rm -rf "$ctx"; mkdir -p "$TMP/$tool-$run"; cp -a "$TMP/src/$w" "$ctx"
      cache=$REG/cache/$tool-$w:$TAG-$run
      empty "$tool" "$TMP/a"
      T[$w,$tool,A]+="$(seconds machine_a "$tool" "$ctx" "$cache") "
      for s in B-same B-edit; do
        [ "$s" = B-edit ] && edit "$ctx"
        empty "$tool" "$TMP/b"
        mark=$(log_lines)
        T[$w,$tool,$s]+="$(seconds machine_b "$tool" "$ctx" "$cache" "$REG/img/$tool-$w:$TAG-$run-$s") "
        B[$w,$tool,$s]+="$(sent_since "$mark") "
      done
    done
  done
done

# The cost of a mode=max export on a w1 cold build, by compression.
for run in $(seq "$RUNS"); do
  for c in none zstd gzip; do
    rm -rf "$TMP/x"
    case $c in
      none) args=() ;;
      zstd) args=(--cache-to "type=local,dest=$TMP/x-cache-$run-$c,mode=max") ;;
      gzip) args=(--cache-to "type=local,dest=$TMP/x-cache-$run-$c,mode=max,compression=gzip") ;;
    esac
    T[x,$c]+="$(seconds "$RBUILD" --root "$TMP/x" build -q -t x "${args[@]}" "$TMP/src/w1-multistage") "
  done
  S[zstd]=$(du -sb "$TMP/x-cache-$run-zstd" | cut -f1)
  S[gzip]=$(du -sb "$TMP/x-cache-$run-gzip" | cut -f1)
done

m() { local v; v=$(tr ' ' '\n' <<<"$1" | grep -v '^$'); grep -q FAIL <<<"$v" && echo FAIL || median <<<"$v"; }
ratio() { [[ $1 == FAIL || $2 == FAIL ]] && echo - || echo "scale=2; $1 / $2" | bc; }
[ -n "${RAW:-}" ] && for k in "${!T[@]}"; do echo "raw $k: ${T[$k]}"; done
echo "remote cache, CI scenario: medians of $RUNS (seconds; bytes = blob bytes the registry sent during B)"
echo
echo "| workload | scenario | rbuild | BuildKit 0.11.6 | rbuild/BuildKit | rbuild bytes | BuildKit bytes |"
echo "|---|---|---|---|---|---|---|"
for w in ${WORKLOADS//,/ }; do
  for s in A B-same B-edit; do
    r=$(m "${T[$w,rbuild,$s]}"); k=$(m "${T[$w,buildkit11,$s]}")
    rb=-; kb=-
    [ "$s" != A ] && { rb=$(m "${B[$w,rbuild,$s]}"); kb=$(m "${B[$w,buildkit11,$s]}"); }
    echo "| $w | $s | $r | $k | $(ratio "$r" "$k") | $rb | $kb |"
  done
done
echo
none=$(m "${T[x,none]}"); zstd=$(m "${T[x,zstd]}"); gzip=$(m "${T[x,gzip]}")
echo "| w1 cold build | seconds | vs no export | cache size (bytes) |"
echo "|---|---|---|---|"
echo "| no --cache-to | $none | 1.00 | - |"
echo "| mode=max, zstd-3 (default) | $zstd | $(ratio "$zstd" "$none") | ${S[zstd]:-?} |"
echo "| mode=max, gzip-6 | $gzip | $(ratio "$gzip" "$none") | ${S[gzip]:-?} |"
