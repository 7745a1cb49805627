#!/usr/bin/env bash
# Stops what scripts/peers-up.sh started (by the process ids it recorded);
# --purge also deletes their data ($PEERS_DIR).
#   scripts/peers-down.sh [--purge]
set -uo pipefail
PEERS_DIR=${PEERS_DIR:-/var/tmp/rbuild-peers}
for pidfile in "$PEERS_DIR/buildkitd/pid" "$PEERS_DIR/docker/pid" "$PEERS_DIR/registry/pid"; do
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    rm -f "$pidfile"
  fi
done
[[ ${1:-} == --purge ]] && rm -rf "$PEERS_DIR"
exit 0
