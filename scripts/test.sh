#!/usr/bin/env bash
# Runs the whole test suite, as root (RUN executes in real namespaces on
# real overlayfs; the registry tests start Debian's docker-registry). First
# installs what the tests need (scripts/install-deps.sh: Debian packages,
# /dev/net/tun, the rootless test user), so it passes on a fresh Debian 12
# machine with a Rust toolchain. Every step runs even when one fails, and
# every test binary runs even when another fails; the exit status is 1 if
# anything failed, and the failed steps are named at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
failed=()
step() { "$@" || failed+=("$*"); }

scripts/install-deps.sh || { echo "test.sh: installing the test dependencies failed" >&2; exit 1; }
step cargo fmt --all -- --check
step cargo clippy --workspace --all-targets --all-features -- -D warnings
step cargo test --workspace --all-features --no-fail-fast
# The conformance counts, visible in CI output.
cargo test -q -p rbuild-frontend --test conformance -- --nocapture --test-threads=1 2>&1 |
  grep -oE '(parser|shell [a-zA-Z]+): [0-9]+/[0-9]+ [a-z]+'

if ((${#failed[@]})); then
  printf 'test.sh: failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
