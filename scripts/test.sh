#!/usr/bin/env bash
# Runs the whole test suite (needs root: RUN executes in real namespaces on
# real overlayfs; the registry tests start Debian's docker-registry).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo test --workspace --all-features 2>&1
