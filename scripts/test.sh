#!/usr/bin/env bash
# Runs the whole test suite (needs root: RUN executes in real namespaces on
# real overlayfs; the registry tests start Debian's docker-registry).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo test --workspace --all-features 2>&1
# The conformance counts, visible in CI output.
cargo test -q -p rbuild-frontend --test conformance -- --nocapture --test-threads=1 2>&1 | grep -oE '(parser|shell [a-zA-Z]+): [0-9]+/[0-9]+ [a-z]+'
