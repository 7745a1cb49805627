# Sourced by the store scripts (kill-store.sh, stress-store.sh): a temp
# dir `$work` removed on exit, a store `$root` in it driven by `rb` (the
# binary `$RBUILD`, else the debug build), and Debian's docker-registry
# on a free loopback port, `$reg`, stopped on exit.
rbuild=${RBUILD:-${CARGO_TARGET_DIR:-target}/debug/rbuild}
work=$(mktemp -d)
registry_pid=
cleanup() {
  [[ -n $registry_pid ]] && kill "$registry_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
root=$work/store
rb() { "$rbuild" --root "$root" "$@"; }

port=$((20000 + RANDOM % 20000)) # a free one: nothing answers there
while (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null; do port=$((20000 + RANDOM % 20000)); done
cat >"$work/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
registry_pid=$!
reg=127.0.0.1:$port
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
