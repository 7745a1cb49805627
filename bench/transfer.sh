#!/usr/bin/env bash
# Push and pull throughput of a 1 GiB image (4 layers of 256 MiB of random
# bytes) on loopback, rbuild vs skopeo in one run (median of RUNS; MB/s and
# ratio of throughputs). Each run starts a fresh Debian docker-registry on
# 127.0.0.1:5055 and a fresh rbuild store (built outside the timing), so
# neither tool can skip, mount or reuse a blob or compressed variant from
# an earlier run.
#   push  the store's uncompressed layers, gzip-compressed on the way (what
#         both tools do by default: `rbuild push` vs `skopeo copy oci:…`)
#   pull  into an empty store (`rbuild pull` vs `skopeo copy` to an OCI
#         layout)
#   bench/transfer.sh RBUILD_BINARY [RUNS]
set -euo pipefail
RBUILD=$(realpath "$1"); RUNS=${2:-3}
PORT=5055; REG=127.0.0.1:$PORT
TMP=$(mktemp -d /var/tmp/rbuild-transfer.XXXXXX)
STORE=$TMP/store
REGPID=
trap '[ -n "$REGPID" ] && kill "$REGPID" 2>/dev/null; rm -rf "$TMP"' EXIT

. "$(dirname "${BASH_SOURCE[0]}")/lib/timing.sh"
timed() { local t0; t0=$(now); "$@" >/dev/null 2>&1 || { echo FAIL; return; }; echo "$(now) - $t0" | bc; }
registry_restart() {
  [ -n "$REGPID" ] && { kill "$REGPID"; wait "$REGPID" 2>/dev/null || true; }
  rm -rf "$TMP/reg"; mkdir -p "$TMP/reg"
  cat >"$TMP/reg/config.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $TMP/reg/data}}
http: {addr: $REG}
EOF
  docker-registry serve "$TMP/reg/config.yml" >/dev/null 2>&1 &
  REGPID=$!
  until curl -fs "http://$REG/v2/" >/dev/null; do sleep 0.05; done
}

mkdir -p "$TMP/ctx"
printf 'FROM scratch\n' >"$TMP/ctx/Dockerfile"
for l in a b c d; do
  head -c $((256 << 20)) /dev/urandom >"$TMP/ctx/$l"
  printf 'COPY %s /%s\n' "$l" "$l" >>"$TMP/ctx/Dockerfile"
done
MB=$(du -sm --apparent-size "$TMP/ctx" | cut -f1)

declare -A T
for i in $(seq "$RUNS"); do
  registry_restart
  rm -rf "$STORE"
  "$RBUILD" --root "$STORE" build -q -t big "$TMP/ctx" >/dev/null
  "$RBUILD" --root "$STORE" tag big "$REG/r/big$i:1"
  T[rp]+="$(timed "$RBUILD" --root "$STORE" push "$REG/r/big$i:1") "
  T[sp]+="$(timed skopeo copy -q --dest-tls-verify=false "oci:$STORE:big" "docker://$REG/s/big$i:1") "
  rm -rf "$TMP/pr" "$TMP/ps"
  T[rl]+="$(timed "$RBUILD" --root "$TMP/pr" pull "$REG/r/big$i:1") "
  T[sl]+="$(timed skopeo copy -q --src-tls-verify=false "docker://$REG/s/big$i:1" "oci:$TMP/ps:big") "
done

m() { local v; v=$(tr ' ' '\n' <<<"${T[$1]}" | grep -v '^$'); grep -q FAIL <<<"$v" && echo FAIL || median <<<"$v"; }
rate() { [[ $1 == FAIL ]] && echo - || echo "scale=0; $MB / $1" | bc; }
echo "## 1 GiB image over loopback (median of $RUNS; MB/s; ratio rbuild/skopeo throughput)"
echo
echo "| scenario | rbuild s | rbuild MB/s | skopeo s | skopeo MB/s | rbuild/skopeo |"
echo "|---|---|---|---|---|---|"
for s in "push (gzip on the way):rp:sp" "pull:rl:sl"; do
  IFS=: read -r name r k <<<"$s"
  a=$(m "$r"); b=$(m "$k")
  ratio=-; [[ $a != FAIL && $b != FAIL ]] && ratio=$(echo "scale=2; $b / $a" | bc)
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$a" "$(rate "$a")" "$b" "$(rate "$b")" "$ratio"
done
