#!/usr/bin/env bash
# The differential check, the project's parity proof: builds every case of
# testdata/diff/ with rbuild and with BuildKit v0.11.6 from the same base
# images, and compares the two results, whole filesystem and config
# (bench/diffcheck/, which also prints the summary).
#   bench/diffcheck.sh [RBUILD_BINARY] [CASE…]
# It starts its own peers and stops them on exit: buildkitd (OCI worker on
# runc, from ../shared/peers/ or $BUILDKIT_ARCHIVE) on a private socket, a
# private registry (Debian's docker-registry on a free loopback port) with
# the base images it makes (busybox from busybox-static, and a merged-/usr
# variant), and an HTTP server for ADD of URLs and of git repositories.
# Needs root (both engines run RUN in namespaces). Exit status 1 when there
# is an unlisted difference, or when a case listed in bench/diff-known.txt
# no longer differs.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
RBUILD=${1:-${CARGO_TARGET_DIR:-$REPO/target}/debug/rbuild}
shift || true
. "$REPO/scripts/lib/buildkit-archive.sh"
ARCHIVE=$(buildkit_archive)
[ -x "$RBUILD" ] || { echo "diffcheck: no rbuild binary at $RBUILD (cargo build first)" >&2; exit 2; }
if [ -z "$ARCHIVE" ] || [ ! -r "$ARCHIVE" ]; then
  echo "diffcheck: SKIPPED: no BuildKit v0.11.6 archive (set BUILDKIT_ARCHIVE; looked in ../shared/peers and /work/shared/peers)" >&2
  exit 0
fi
for c in docker-registry skopeo umoci runc busybox zstd curl python3; do
  command -v "$c" >/dev/null || { echo "diffcheck: $c is missing (scripts/install-deps.sh installs it)" >&2; exit 2; }
done

WORK=$(mktemp -d /var/tmp/rbuild-diff.XXXXXX)
chmod 755 "$WORK"   # the HTTP server's git CGI runs as nobody
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  # buildkitd unmounts its snapshots on exit; anything left would pin WORK.
  grep -o " $WORK/[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  [ -n "${DIFFCHECK_KEEP:-}" ] && echo "diffcheck: kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; "$@"; }

# The registry both engines pull the base images from.
REG=127.0.0.1:$(free_port)
mkdir -p "$WORK/registry"
printf 'version: 0.1\nstorage: { filesystem: { rootdirectory: %s } }\nhttp: { addr: "%s" }\nlog: { level: error }\n' \
  "$WORK/registry/data" "$REG" >"$WORK/registry/config.yml"
docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
PIDS+=($!)
wait_for curl -fsS "http://$REG/v2/"

# BuildKit v0.11.6, rootful, OCI worker on runc and overlayfs, host network
# (the cases reach only the loopback HTTP server, from ADD, which is not RUN).
mkdir -p "$WORK/bin" "$WORK/buildkitd"
tar -xf "$ARCHIVE" -C "$WORK/bin"
BKSOCK=unix://$WORK/buildkitd/sock
printf '[worker.oci]\n  enabled = true\n  snapshotter = "overlayfs"\n  binary = "runc"\n[worker.containerd]\n  enabled = false\n[registry."%s"]\n  http = true\n  insecure = true\n' \
  "$REG" >"$WORK/buildkitd/config.toml"
"$WORK/bin/buildkitd" --config "$WORK/buildkitd/config.toml" --root "$WORK/buildkitd/root" \
  --addr "$BKSOCK" --oci-worker-net host >"$WORK/buildkitd/log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/bin/buildctl" --addr "$BKSOCK" debug workers

# The files ADD fetches by URL, with fixed Last-Modified times.
mkdir -p "$WORK/http"
(cd "$WORK/http" && bash "$REPO/bench/diffcheck/http.sh")
HTTP=127.0.0.1:$(free_port)
python3 -m http.server --cgi --bind 127.0.0.1 --directory "$WORK/http" "${HTTP##*:}" >"$WORK/http.log" 2>&1 &
PIDS+=($!)
wait_for curl -fsS "http://$HTTP/"

# The base images, pushed once, so that both engines build FROM the same digests.
bash "$REPO/bench/diffcheck/bases.sh" "$WORK/bases" "$REG"

python3 "$REPO/bench/diffcheck/main.py" --work "$WORK" --rbuild "$RBUILD" \
  --buildctl "$WORK/bin/buildctl" --buildkit-addr "$BKSOCK" --registry "$REG" --http "$HTTP" \
  --cases "$REPO/testdata/diff" --known "$REPO/bench/diff-known.txt" "$@" || status=$?
exit "${status:-0}"
