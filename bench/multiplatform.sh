#!/usr/bin/env bash
# The multi-platform figure (issue 18): one cold two-platform build
# (linux/amd64 native + linux/arm64 through qemu-user) of w3-like work, by
# rbuild and by BuildKit v0.11.6 with the same qemu (binfmt_misc handler
# with the F flag), each engine's build cache emptied first, one run each.
#   bench/multiplatform.sh RBUILD_BINARY
# Needs scripts/peers-up.sh (the loopback registry and buildkitd), qemu's
# arm64 handler (scripts/install-deps.sh) and Debian's arm64 busybox-static,
# fetched here with `apt-get download` (arm64 added to dpkg's architectures
# for it, and removed again).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RBUILD=${1:?usage: bench/multiplatform.sh RBUILD_BINARY}
PEERS_DIR=${PEERS_DIR:-/var/tmp/rbuild-peers}
BENCH_DIR=${BENCH_DIR:-/var/tmp/rbuild-bench}
REG=127.0.0.1:5000
BUILDCTL=("$PEERS_DIR/bin/buildctl" --addr "unix://$PEERS_DIR/buildkitd.sock")
PLATFORMS=linux/amd64,linux/arm64
work=$(mktemp -d /var/tmp/rbuild-multiplatform.XXXXXX)
trap 'rm -rf "$work"' EXIT
store=$work/store

# A two-platform busybox base in the registry, made by rbuild from the
# host's busybox-static and Debian's arm64 one.
base=$work/base
mkdir -p "$base/bin/amd64" "$base/bin/arm64"
cp "$(command -v busybox)" "$base/bin/amd64/busybox"
if [ ! -e "$BENCH_DIR/busybox-arm64/bin/busybox" ]; then
  mkdir -p "$BENCH_DIR/busybox-arm64"
  added=0
  dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64; added=1; }
  apt-get update -qq
  (cd "$work" && apt-get download -qq busybox-static:arm64 2>/dev/null)
  [ "$added" = 1 ] && dpkg --remove-architecture arm64
  dpkg-deb -x "$work"/busybox-static_*_arm64.deb "$BENCH_DIR/busybox-arm64"
fi
cp "$BENCH_DIR/busybox-arm64/bin/busybox" "$base/bin/arm64/busybox"
cat >"$base/Dockerfile" <<'DOCKERFILE'
FROM scratch
ARG TARGETARCH
COPY bin/$TARGETARCH/busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
DOCKERFILE
"$RBUILD" --root "$store" build -q --platform "$PLATFORMS" -t "$REG/busybox-2p" --push "$base" >/dev/null

# The w3 workload (bench/workloads/generate.py) on that base.
[ -d "$BENCH_DIR/w3-typical-app" ] || python3 "$HERE/workloads/generate.py" "$BENCH_DIR" >/dev/null
ctx=$work/w3
cp -r "$BENCH_DIR/w3-typical-app" "$ctx"
sed -i "s|FROM $REG/busybox|FROM $REG/busybox-2p|" "$ctx/Dockerfile"

seconds() {
  local start
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || { echo FAIL; return; }
  echo "$(date +%s.%N) - $start" | bc
}
# A fresh store: the base is pulled from the registry, as BuildKit pulls it.
rbuild_s=$(seconds "$RBUILD" --root "$work/cold" build --platform "$PLATFORMS" \
  -o "type=oci,dest=$work/rbuild.tar" "$ctx")
"${BUILDCTL[@]}" prune --all >/dev/null 2>&1 || true
buildkit_s=$(seconds "${BUILDCTL[@]}" build --frontend dockerfile.v0 \
  --local context="$ctx" --local dockerfile="$ctx" --opt platform="$PLATFORMS" \
  --output "type=oci,dest=$work/buildkit.tar")
echo "| workload | platforms | rbuild s | BuildKit 0.11.6 s | BuildKit/rbuild |"
echo "|---|---|---|---|---|"
if [[ $rbuild_s == FAIL || $buildkit_s == FAIL ]]; then ratio=-
else ratio=$(printf '%.2f' "$(echo "$buildkit_s / $rbuild_s" | bc -l)"); fi
echo "| w3-typical-app, cold | $PLATFORMS (arm64 under qemu) | $rbuild_s | $buildkit_s | $ratio |"
