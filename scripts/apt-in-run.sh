#!/usr/bin/env bash
# Package managers in RUN, through the default (slirp4netns) network:
# debootstrap makes a minimal Debian 12 root from Debian's package registry
# (offline from any image registry), rbuild imports it as an image
# (`FROM scratch` + `ADD rootfs.tar /`), then a build runs
# `apt-get update && apt-get install` in RUN and the image runs the
# installed program. Kept out of the CI suite (it downloads ~25 MB from
# Debian's mirror; 81 s on this 2-core machine unloaded, 180 s loaded: too
# slow for every test run), so it is a script; it prints each phase's time
# and exits non-zero on any failure.
#   scripts/apt-in-run.sh RBUILD_BINARY [WORKDIR]
# Needs root and debootstrap.
set -euo pipefail
RBUILD=$(realpath "$1")
WORK=${2:-$(mktemp -d /var/tmp/rbuild-apt.XXXXXX)}
mkdir -p "$WORK"
STORE=$WORK/store
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)}
mirror=${mirror:-http://deb.debian.org/debian}
phase() { echo "$(date +%T) $*"; }

if [[ ! -f $WORK/base/rootfs.tar ]]; then
  phase "debootstrap --variant=minbase bookworm from $mirror"
  rm -rf "$WORK/rootfs"
  debootstrap --variant=minbase bookworm "$WORK/rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  mkdir -p "$WORK/base"
  tar -C "$WORK/rootfs" --numeric-owner -cf "$WORK/base/rootfs.tar" .
  rm -rf "$WORK/rootfs"
fi
printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' >"$WORK/base/Dockerfile"
phase "import the root as debian:bookworm"
"$RBUILD" --root "$STORE" build -q -t debian:bookworm "$WORK/base" >/dev/null

mkdir -p "$WORK/app"
cat >"$WORK/app/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm
RUN cat /etc/resolv.conf && apt-get update && apt-get install -y --no-install-recommends hello && hello
DOCKERFILE
phase "build: RUN apt-get update && apt-get install hello (default network)"
start=$(date +%s)
"$RBUILD" --root "$STORE" build --progress=plain --no-cache -t apt-test "$WORK/app" 2>&1
phase "build done in $(( $(date +%s) - start )) s"
out=$("$RBUILD" --root "$STORE" run --rm apt-test hello)
[[ $out == "Hello, world!" ]] || { echo "unexpected output: $out"; exit 1; }
phase "rbuild run --rm apt-test hello: $out"
echo PASS
