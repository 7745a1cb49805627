#!/usr/bin/env bash
# Kill test of the store's durability contract: KILLS times (default 200),
# one of a build (COPY of a 20 MB file and a RUN that writes 8 MB), a pull
# (of a 64 MB image, after its data was pruned: `rbuild pull`, or a build
# FROM it, whose layer is unpacked while it downloads) or an export
# (`save`, and a build with -o type=oci) is started and killed with SIGKILL
# at a random point; then `debug fsck` must find nothing, and a build must
# give the right image (run and checked).
#
#   scripts/kill-store.sh [KILLS]     (RBUILD= picks the binary)
#
# Needs root, busybox-static and docker-registry (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-200}
. scripts/lib/store-with-registry.sh

mkdir -p "$work/base" "$work/big" "$work/app"
cp -r testdata/busybox/. "$work/base"
cp "$(command -v busybox)" "$work/base/busybox"
rb build -q -t base "$work/base" >/dev/null
printf 'FROM base\nRUN i=0; while [ $i -lt 64 ]; do head -c 1048576 /dev/urandom > /blob$i; i=$((i+1)); done\n' >"$work/big/Dockerfile"
rb build -q -t "$reg/kill/big" "$work/big" >/dev/null
rb push -q "$reg/kill/big" >/dev/null
rb rmi "$reg/kill/big" >/dev/null
mkdir -p "$work/frombig"
printf 'FROM %s\nRUN ls /blob0 >/dev/null\n' "$reg/kill/big" >"$work/frombig/Dockerfile"

head -c 20000000 /dev/urandom >"$work/app/data"
counts=(0 0 0)
for k in $(seq "$kills"); do
  # Every build is new work: the RUN's output and the COPY's file change.
  printf 'FROM base\nCOPY data /data\nRUN head -c 8000000 /dev/urandom > /made && echo %s > /round\nCMD ["cat", "/round"]\n' "$k" >"$work/app/Dockerfile"
  echo "$k" >>"$work/app/data"
  op=$((RANDOM % 3))
  counts[op]=$((counts[op] + 1))
  case $op in
    0) rb build -q -t app "$work/app" >/dev/null 2>&1 & ;;
    1) rb prune -a -f >/dev/null
       if ((RANDOM % 2)); then rb pull -q "$reg/kill/big" >/dev/null 2>&1 &
       else rb build -q "$work/frombig" >/dev/null 2>&1 & fi ;;
    2) if ((RANDOM % 2)); then rb save -o "$work/out.tar" base >/dev/null 2>&1 &
       else rb build -q -o "type=oci,dest=$work/out.tar" "$work/app" >/dev/null 2>&1 & fi ;;
  esac
  pid=$!
  sleep "0.$(printf '%03d' $((RANDOM % 1000)))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  out=$(rb debug fsck)
  [[ $(echo "$out" | tail -1) == *", 0 problems"* ]] || { echo "FAIL after kill $k (op $op): $out"; exit 1; }
  rb build -q -t app "$work/app" >/dev/null
  got=$(rb run --rm app)
  [[ $got == "$k" ]] || { echo "FAIL after kill $k: the next build says $got"; exit 1; }
done
# The pulled image, after all those kills, is whole.
rb pull -q "$reg/kill/big" >/dev/null
[[ $(rb run --rm "$reg/kill/big" sh -c 'ls / | grep -c blob') == 64 ]] || { echo "FAIL: pulled image"; exit 1; }
echo "OK: $kills kills (${counts[0]} builds, ${counts[1]} pulls, ${counts[2]} exports): fsck clean and the next build right after each"
