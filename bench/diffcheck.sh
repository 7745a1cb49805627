#!/usr/bin/env bash
# Differential check: builds testdata cases with rbuild and with BuildKit
# (dockerd from ../shared/tools/peers-up.sh) from the same base image, then
# compares the final filesystems (paths, types, modes, owners, contents,
# symlinks) and the image configs with bench/diffcheck.py.
#   bench/diffcheck.sh [RBUILD_BINARY]
# Skips (exit 0 with a note) when no dockerd is running.
set -euo pipefail
cd "$(dirname "$0")/.."
RBUILD=${1:-$PWD/target/release/rbuild}
export DOCKER_HOST=${DOCKER_HOST:-unix://${PEERS_DIR:-/var/tmp/rbuild-peers}/docker.sock}
export DOCKER_BUILDKIT=1
DOCKER=/usr/bin/docker
if ! $DOCKER info >/dev/null 2>&1; then
  echo "diffcheck: no dockerd at $DOCKER_HOST (run ../shared/tools/peers-up.sh); skipped"
  exit 0
fi
WORK=$(mktemp -d /var/tmp/rbuild-diff.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/store

# The same base image on both sides, under the name the testdata uses.
$DOCKER pull -q 127.0.0.1:5000/busybox >/dev/null
$DOCKER tag 127.0.0.1:5000/busybox busybox
"$RBUILD" --root "$ROOT" pull -q 127.0.0.1:5000/busybox >/dev/null
"$RBUILD" --root "$ROOT" tag 127.0.0.1:5000/busybox busybox

fail=0
for name in hello config onbuild copy-rules run-forms multistage; do
  ctx=$WORK/ctx/$name
  mkdir -p "$ctx"; cp -a "testdata/$name/." "$ctx/"
  if [ "$name" = copy-rules ]; then
    chmod 600 "$ctx/bin/tool"
    (cd "$ctx" && tar czf archive.tar.gz src a)
  fi
  tag=$name
  echo "== $name"
  # This dockerd's built-in frontend predates some syntax: each line it
  # cannot parse (--exclude, --parents, --link…) or silently misreads
  # (heredocs, symbolic --chmod) is dropped, and named, and both engines
  # build what is left.
  while line=$(grep -n -m1 -E '<<|--chmod=[^0-9 ]' "$ctx/Dockerfile" | cut -d: -f1) && [ -n "$line" ]; do
    echo "dropped for the peer: line $line: $(sed -n "${line}p" "$ctx/Dockerfile")"
    sed -i "${line}d" "$ctx/Dockerfile"
  done
  until $DOCKER build -q -t "$tag" "$ctx" >"$WORK/bk-$name.log" 2>&1; do
    line=$(grep -o 'dockerfile parse error line [0-9]*' "$WORK/bk-$name.log" | head -1 | grep -o '[0-9]*$') || {
      echo "BuildKit failed:"; cat "$WORK/bk-$name.log"; fail=1; continue 2; }
    echo "dropped for the peer: line $line: $(sed -n "${line}p" "$ctx/Dockerfile")"
    sed -i "${line}d" "$ctx/Dockerfile"
  done
  "$RBUILD" --root "$ROOT" build -q -t "$tag" "$ctx" >/dev/null
  # BuildKit's image as stored, unpacked the same way as rbuild's: this
  # dockerd's `-o type=local` writes every file as 0:0, losing owners.
  $DOCKER save -o "$WORK/bk-$name.tar" "$tag"
  skopeo copy -q "docker-archive:$WORK/bk-$name.tar" "oci:$WORK/bk-oci:$tag"
  umoci unpack --image "$WORK/bk-oci:$tag" "$WORK/bk-$name" >/dev/null
  umoci unpack --image "$ROOT:$tag" "$WORK/rb-$name" >/dev/null
  # The raw config blob (skopeo --config would drop Docker's extensions).
  config=$(skopeo inspect --raw "oci:$ROOT:$tag" | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"].split(":")[1])')
  cp "$ROOT/blobs/sha256/$config" "$WORK/rb-$name.json"
  $DOCKER inspect "$tag" | python3 -c 'import json,sys; print(json.dumps({"config": json.load(sys.stdin)[0]["Config"]}))' >"$WORK/bk-$name.json"
  python3 bench/diffcheck.py "$WORK/rb-$name/rootfs" "$WORK/bk-$name/rootfs" "$WORK/rb-$name.json" "$WORK/bk-$name.json" || fail=1
done
exit $fail
