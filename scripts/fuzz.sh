#!/bin/sh
# Runs the cargo-fuzz targets of fuzz/ for a fixed time each (not part of
# CI: it needs nightly and takes minutes). Usage:
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 60 s, every target)
#
# Each target starts from its seed corpus in testdata/fuzz/<target>/ (read
# only); what the run adds goes to fuzz/corpus/<target>/, crashes to
# fuzz/artifacts/<target>/ (reproduce one with `cargo +nightly fuzz run
# <target> <file>`). Turn every crash into a regression test that CI runs.
set -eu
cd "$(dirname "$0")/.."
# The unpack target makes and deletes directories for every input: on tmpfs
# it runs ~330 inputs/s, on a busy ext4 disk ~14.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ]; then
    export TMPDIR=/dev/shm
fi
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^rbuild-fuzz$')}
status=0
for target in $targets; do
    mkdir -p "fuzz/corpus/$target" "testdata/fuzz/$target"
    echo "== $target: ${seconds}s"
    nice -n 19 cargo +nightly fuzz run "$target" \
        "fuzz/corpus/$target" "testdata/fuzz/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        || status=1
done
exit $status
