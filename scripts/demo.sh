#!/usr/bin/env bash
# From a fresh Debian 12 machine with a Rust toolchain (as root) to a real
# build and run of testdata/hello: installs busybox-static, builds rbuild,
# makes a busybox base image from Debian's binary (Docker Hub is not
# reachable here), builds testdata/hello on it and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v busybox >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
cargo build --release --quiet
rbuild=$PWD/target/release/rbuild
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp -r testdata/busybox/. "$ctx"
cp "$(command -v busybox)" "$ctx/busybox"
"$rbuild" build -t busybox "$ctx"
"$rbuild" build -t hello testdata/hello
"$rbuild" images
"$rbuild" run --rm hello
