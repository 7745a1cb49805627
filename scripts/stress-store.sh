#!/usr/bin/env bash
# Concurrency stress test of one store: every round runs a build, a pull,
# a push, a save, tags and untags, a load, an inspect and a `prune -a` at
# the same time; every command must succeed. At the end `debug fsck` must
# find nothing and every tagged image must run.
#
#   scripts/stress-store.sh [ROUNDS]     (default 20; RBUILD= picks the binary)
#
# Needs root, busybox-static and docker-registry (see .ci/run). The e2e
# suite runs a short version (tests/e2e/store.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-20}
. scripts/lib/store-with-registry.sh

# A base image, pushed, and saved as an archive.
mkdir -p "$work/base" "$work/app"
cp -r testdata/busybox/. "$work/base"
cp "$(command -v busybox)" "$work/base/busybox"
rb build -q -t base "$work/base" >/dev/null
rb tag base "$reg/stress/base"
rb push -q "$reg/stress/base" >/dev/null
rb save -o "$work/base.tar" base

mkdir -p "$work/log"
pids=()
run() { # COMMAND… : in the background, its output shown if it fails
  local log=$work/log/$round-${#pids[@]}
  ("$@" >"$log" 2>&1 || { echo "round $round: $* failed:"; cat "$log"; exit 1; }) &
  pids+=($!)
}
for round in $(seq "$rounds"); do
  printf 'FROM base\nCOPY n /n\nRUN cat /n > /built && echo %s >> /built\nCMD ["cat", "/built"]\n' "$round" >"$work/app/Dockerfile"
  echo "$round" >"$work/app/n"
  run rb build -q -t "app-$((round % 3))" "$work/app"
  run rb pull -q "$reg/stress/base"
  [[ $round -gt 1 ]] && run rb push -q "$reg/stress/app:$(( (round - 1) % 3))"
  run rb tag base "base-$round"
  [[ $round -gt 2 ]] && run rb rmi "base-$((round - 2))"
  run rb load -i "$work/base.tar"
  run rb save -o "$work/save-$round.tar" base
  run rb inspect base
  run rb prune -a -f
  fail=0
  for pid in "${pids[@]}"; do wait "$pid" || fail=1; done
  pids=()
  [[ $fail == 0 ]] || { echo "FAIL in round $round"; exit 1; }
  # The app of this round, tagged for the next round's push.
  rb tag "app-$((round % 3))" "$reg/stress/app:$((round % 3))"
  rm -f "$work/save-$round.tar"
done

out=$(rb debug fsck)
echo "$out" | tail -1
[[ $(echo "$out" | tail -1) == *", 0 problems"* ]] || { echo "FAIL: fsck: $out"; exit 1; }
images=0
for image in $(rb images | awk 'NR > 1 { print $1 ":" $2 }'); do
  rb run --rm "$image" true || { echo "FAIL: $image does not run"; exit 1; }
  images=$((images + 1))
done
for n in 0 1 2; do
  if rb images | grep "^app-$n " >/dev/null; then
    got=$(rb run --rm "app-$n" | tail -1)
    want=$((rounds - (rounds - n) % 3)) # the last round that built app-$n
    [[ $got == "$want" ]] || { echo "FAIL: app-$n says $got, not $want"; exit 1; }
  fi
done
echo "OK: $rounds rounds of 9 concurrent commands, fsck clean, $images tagged images run"
