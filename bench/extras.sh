#!/usr/bin/env bash
# Extras on top of the side-by-side build runner, each beside a peer in
# the same run (median of RUNS, ratio peer/rbuild):
#   push   the w3 image to the local registry (fresh repository each run):
#          `rbuild push` vs `skopeo copy` from the very same store
#   pull   the pushed image into an empty store: `rbuild pull` vs `skopeo copy`
#   rss    peak RSS (MiB) of a no-op build and of the pull
#   bench/extras.sh RBUILD_BINARY RUNS
# Needs the w3 image built by bench/sidebyside.sh (tag bench/w3-typical-app) and
# the registry on 127.0.0.1:5000 (scripts/peers-up.sh).
set -euo pipefail
RBUILD=$1; RUNS=${2:-3}
REG=127.0.0.1:5000
IMG=bench/w3-typical-app
STORE=${RBUILD_ROOT:-/var/lib/rbuild}
TMP=$(mktemp -d /var/tmp/rbuild-extras.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

. "$(dirname "${BASH_SOURCE[0]}")/lib/timing.sh"
timed() { local t0; t0=$(now); "$@" >/dev/null 2>&1 || { echo FAIL; return; }; echo "$(now) - $t0" | bc; }
# peak RSS in MiB of a command (GNU time)
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.0f", $1/1024}'; }
ratio() { if [[ $1 == FAIL || $2 == FAIL ]]; then echo -; else echo "scale=2; $2 / $1" | bc; fi; }
row() { # NAME RBUILD_MEDIAN PEER PEER_MEDIAN
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$(ratio "$2" "$4")"
}

push_r=(); push_s=(); pull_r=(); pull_s=()
for i in $(seq "$RUNS"); do
  n=$RANDOM$RANDOM
  "$RBUILD" tag "$IMG" "$REG/bench/w3-r$n" >/dev/null
  push_r+=("$(timed "$RBUILD" push "$REG/bench/w3-r$n")")
  push_s+=("$(timed skopeo copy -q --dest-tls-verify=false "oci:$STORE:$IMG" "docker://$REG/bench/w3-s$n")")
  rm -rf "$TMP/r" "$TMP/s"
  pull_r+=("$(timed "$RBUILD" --root "$TMP/r" pull "$REG/bench/w3-r$n")")
  pull_s+=("$(timed skopeo copy -q --src-tls-verify=false "docker://$REG/bench/w3-s$n" "oci:$TMP/s:w3")")
done

m() { printf '%s\n' "$@" | grep -q FAIL && echo FAIL || printf '%s\n' "$@" | median; }
echo "## Push and pull of w3 (median seconds of $RUNS; ratio peer/rbuild)"
echo
echo "| scenario | rbuild s | peer | peer s | peer/rbuild |"
echo "|---|---|---|---|---|"
row "push w3 to registry" "$(m "${push_r[@]}")" skopeo "$(m "${push_s[@]}")"
row "pull w3 to empty store" "$(m "${pull_r[@]}")" skopeo "$(m "${pull_s[@]}")"
echo
echo "## Peak memory (MiB)"
echo
echo "| scenario | rbuild | peer | peer MiB |"
echo "|---|---|---|---|"
rm -rf "$TMP/r2" "$TMP/s2"
printf '| no-op build of w3 | %s | BuildKit (in dockerd) | not measured |\n' \
  "$(rss "$RBUILD" build -q -t "$IMG" "${BENCH_DIR:-/var/tmp/rbuild-bench}/w3-typical-app")"
printf '| pull w3 to empty store | %s | skopeo | %s |\n' \
  "$(rss "$RBUILD" --root "$TMP/r2" pull "$REG/bench/w3-r$n")" \
  "$(rss skopeo copy -q --src-tls-verify=false "docker://$REG/bench/w3-s$n" "oci:$TMP/s2:w3")"
