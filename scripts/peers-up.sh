#!/usr/bin/env bash
# Installs and starts the engines rbuild is measured against (bench/run.sh),
# on this machine, without internet (Debian's and crates.io's registries
# only):
#   registry   Debian's docker-registry on 127.0.0.1:5000, plain HTTP
#   dockerd    Debian's docker.io (20.10, BuildKit 0.8 built in), socket at
#              $PEERS_DIR/docker.sock
#   buildkitd  v0.11.6, from the release archive no package registry here
#              serves: $BUILDKIT_ARCHIVE, by default the project's shared
#              folder (../shared/peers/buildkit-v0.11.6-linux-amd64.tar.zst);
#              OCI worker on runc, socket at $PEERS_DIR/buildkitd.sock,
#              client $PEERS_DIR/bin/buildctl
#   buildah    Debian's, run with --runtime runc
#   base images pushed to the registry: 127.0.0.1:5000/busybox:latest (made
#              here from busybox-static) and, with --debian,
#              127.0.0.1:5000/debian:bookworm (debootstrap from Debian's mirror)
# and the tools the runners use (skopeo, umoci, runc, crun, hyperfine, jq,
# zstd, curl, bc, GNU time). Runs again without harm: it starts only what is
# not running. scripts/peers-down.sh stops them. Needs root.
#   scripts/peers-up.sh [--debian]
set -euo pipefail
PEERS_DIR=${PEERS_DIR:-/var/tmp/rbuild-peers}
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/lib/buildkit-archive.sh"
BUILDKIT_ARCHIVE=$(buildkit_archive)
REG=127.0.0.1:5000
mkdir -p "$PEERS_DIR"

install_packages() {
  local need=() c
  for c in dockerd:docker.io docker-registry:docker-registry buildah:buildah skopeo:skopeo \
           umoci:umoci runc:runc crun:crun busybox:busybox-static hyperfine:hyperfine jq:jq \
           zstd:zstd curl:curl bc:bc /usr/bin/time:time; do
    command -v "${c%%:*}" >/dev/null || need+=("${c##*:}")
  done
  if ((${#need[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

# wait_for CMD…: retries CMD for up to 20 s.
wait_for() { for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; "$@" >/dev/null 2>&1; }

start_registry() {
  registry_up() { curl -fsS "http://$REG/v2/"; }
  registry_up >/dev/null 2>&1 && return
  mkdir -p "$PEERS_DIR/registry"
  printf 'version: 0.1\nstorage:\n  filesystem: { rootdirectory: %s }\n  delete: { enabled: true }\nhttp: { addr: "%s" }\n' \
    "$PEERS_DIR/registry/data" "$REG" >"$PEERS_DIR/registry/config.yml"
  setsid docker-registry serve "$PEERS_DIR/registry/config.yml" >"$PEERS_DIR/registry/log" 2>&1 &
  echo $! >"$PEERS_DIR/registry/pid"
  wait_for registry_up || { echo "registry did not start: $PEERS_DIR/registry/log" >&2; exit 1; }
}

start_dockerd() {
  export DOCKER_HOST=unix://$PEERS_DIR/docker.sock
  docker version >/dev/null 2>&1 && return
  mkdir -p "$PEERS_DIR/docker"
  setsid dockerd --data-root "$PEERS_DIR/docker/data" --exec-root "$PEERS_DIR/docker/exec" \
    --pidfile "$PEERS_DIR/docker/pid" -H "$DOCKER_HOST" --insecure-registry "$REG" \
    >"$PEERS_DIR/docker/log" 2>&1 &
  wait_for docker version || { echo "dockerd did not start: $PEERS_DIR/docker/log" >&2; exit 1; }
}

start_buildkitd() {
  local bk=$PEERS_DIR/bin/buildctl sock=unix://$PEERS_DIR/buildkitd.sock
  if [ ! -x "$bk" ]; then
    [ -n "$BUILDKIT_ARCHIVE" ] && [ -r "$BUILDKIT_ARCHIVE" ] || { echo "no BuildKit v0.11.6 archive (set BUILDKIT_ARCHIVE to its release tarball)" >&2; exit 1; }
    mkdir -p "$PEERS_DIR/bin"
    tar -xf "$BUILDKIT_ARCHIVE" -C "$PEERS_DIR/bin"
  fi
  "$bk" --addr "$sock" debug workers >/dev/null 2>&1 && return
  mkdir -p "$PEERS_DIR/buildkitd"
  printf '[worker.oci]\n  enabled = true\n  snapshotter = "overlayfs"\n[worker.containerd]\n  enabled = false\n[registry."%s"]\n  http = true\n  insecure = true\n' \
    "$REG" >"$PEERS_DIR/buildkitd/config.toml"
  setsid "$PEERS_DIR/bin/buildkitd" --config "$PEERS_DIR/buildkitd/config.toml" \
    --root "$PEERS_DIR/buildkitd/root" --addr "$sock" >"$PEERS_DIR/buildkitd/log" 2>&1 &
  echo $! >"$PEERS_DIR/buildkitd/pid"
  wait_for "$bk" --addr "$sock" debug workers || { echo "buildkitd did not start: $PEERS_DIR/buildkitd/log" >&2; exit 1; }
}

# push_rootfs DIR NAME:TAG: a one-layer image of DIR, pushed to the registry.
push_rootfs() {
  local layout
  layout=$(mktemp -d "$PEERS_DIR/layout.XXXXXX")
  umoci init --layout "$layout/oci"
  umoci new --image "$layout/oci:t"
  umoci insert --image "$layout/oci:t" "$1" / >/dev/null
  umoci config --image "$layout/oci:t" --architecture=amd64 --os=linux --config.cmd=/bin/sh \
    --config.env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  skopeo copy --quiet --dest-tls-verify=false "oci:$layout/oci:t" "docker://$REG/$2"
  rm -rf "$layout"
}

in_registry() { skopeo inspect --tls-verify=false "docker://$REG/$1" >/dev/null 2>&1; }

push_busybox() {
  in_registry busybox:latest && return
  local root
  root=$(mktemp -d "$PEERS_DIR/busybox.XXXXXX")
  mkdir -p "$root"/{bin,sbin,etc,root,tmp,var,home,usr/bin,usr/sbin}
  cp "$(command -v busybox)" "$root/bin/busybox"
  local applet
  for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  push_rootfs "$root" busybox:latest
  rm -rf "$root"
}

push_debian() {
  in_registry debian:bookworm && return
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  local mirror root
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)}
  root=$(mktemp -d "$PEERS_DIR/debian.XXXXXX")
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$PEERS_DIR/debootstrap.log" 2>&1
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  push_rootfs "$root" debian:bookworm
  rm -rf "$root"
}

install_packages
start_registry
start_dockerd
start_buildkitd
# buildah, podman and skopeo: the loopback registry speaks plain HTTP.
mkdir -p /etc/containers/registries.conf.d
printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$REG" >/etc/containers/registries.conf.d/50-rbuild-peers.conf
push_busybox
[[ ${1:-} == --debian ]] && push_debian
echo "peers up: registry http://$REG, dockerd $DOCKER_HOST, buildkitd unix://$PEERS_DIR/buildkitd.sock, buildah"
