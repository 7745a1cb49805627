#!/usr/bin/env bash
# Cold builds against the critical path of their RUN steps (issue 19):
# each workload built cold (an empty store, the base image pulled from the
# peers' loopback registry), its `--progress=rawjson` read for every step's
# start/end, its inputs, and each RUN's process span (the `process`
# status: sandbox set-up to exit). Over the step graph, the critical path
# is the longest chain of RUN steps (a COPY or base pull adds nothing to a
# chain, it only links RUNs); then, medians of RUNS:
#   wall       the build as a whole process
#   path       the critical path, each RUN weighed by its step's own
#              start/end (the issue's measure)
#   beyond     wall - path, as % of wall (the target: <= 10 %)
#   proc path  the same path weighed by the RUNs' process spans only (so
#              without unpacking the base, the overlay and the commit)
#   proc beyond  wall - proc path, as % of wall
#   first RUN  from the build's start to the first RUN's process start
#              (load, base pull and unpack, context, the first sandbox)
#   tail       from the last step's end to the process exit (the image
#              export, the store's index, syncs)
#   after RUNs from the last RUN process's exit to the last step's end
#              (the steps after the RUNs: copies waiting for staged work)
#   staged     the spans of copies made ahead of their bases, added up
#              (`staged checksum` and `staged copy` statuses)
#   [BASELINE=OLD_RBUILD] [BENCH_TMP=DIR] [WORKLOADS=w1-multistage,w3-typical-app]
#     bench/critpath.sh RBUILD_BINARY [RUNS]
# BASELINE: an older binary measured beside this one, run for run
# alternated. Each build has a new store of its own under BENCH_TMP
# (/var/tmp by default), all deleted at the end: a store deleted right
# before a build would slow its file creation on ext4 without a journal,
# which does not reuse an inode freed less than a minute ago (see
# docs/PERFORMANCE.md). Needs scripts/peers-up.sh's registry (127.0.0.1:5000/busybox);
# the contexts are made by bench/workloads/generate.py under $BENCH_DIR
# (default /var/tmp/rbuild-bench).
set -euo pipefail
shopt -s inherit_errexit
HERE=$(cd "$(dirname "$0")" && pwd)
RUNS=${2:-3}
BINS=("$(realpath "${1:?usage: bench/critpath.sh RBUILD_BINARY [RUNS]}")")
[[ -n ${BASELINE:-} ]] && BINS+=("$(realpath "$BASELINE")")
WORKLOADS=${WORKLOADS:-w1-multistage,w3-typical-app}
BENCH_DIR=${BENCH_DIR:-/var/tmp/rbuild-bench}
[ -d "$BENCH_DIR/w1-multistage" ] || python3 "$HERE/workloads/generate.py" "$BENCH_DIR" >/dev/null
TMP=$(mktemp -d "${BENCH_TMP:-/var/tmp}/rbuild-critpath.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# cold B WORKLOAD N: one cold build by binary B; its events go to
# $TMP/WORKLOAD.B.N.jsonl, its start and end (Unix seconds) to .wall.
cold() {
  local b=$1 w=$2 n=$3 out="$TMP/$2.$1.$3" t0 t1
  t0=$(date +%s.%N)
  "${BINS[$b]}" --root "$TMP/store.$w.$b.$n" build --progress=rawjson -t "critpath/$w" \
    "$BENCH_DIR/$w" 2>"$out.jsonl" >/dev/null ||
    { echo "build failed: ${BINS[$b]} $w" >&2; tail -5 "$out.jsonl" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t0 $t1" >"$out.wall"
}

IFS=, read -ra WORKLOAD_LIST <<<"$WORKLOADS"
for w in "${WORKLOAD_LIST[@]}"; do
  for n in $(seq "$RUNS"); do
    for b in "${!BINS[@]}"; do cold "$b" "$w" "$n"; done
  done
done

python3 - "$TMP" "$RUNS" "${#BINS[@]}" "${WORKLOAD_LIST[@]}" <<'EOF'
import datetime, json, statistics, sys

tmp, runs, nbins, workloads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]

def secs(stamp):
    """An RFC 3339 timestamp with nanoseconds, as Unix seconds."""
    day, frac = stamp.rstrip("Z").split(".")
    whole = datetime.datetime.fromisoformat(day).replace(tzinfo=datetime.timezone.utc)
    return whole.timestamp() + int(frac.ljust(9, "0")[:9]) / 1e9

def analyse(prefix):
    """One build's figures from its events and its wall times."""
    start, end = map(float, open(prefix + ".wall").read().split())
    vertices, process, staged = {}, {}, 0.0
    for line in open(prefix + ".jsonl"):
        status = json.loads(line)
        for v in status.get("vertexes", []):
            mine = vertices.setdefault(v["digest"], {"inputs": []})
            mine["name"] = v["name"]
            mine["inputs"] = v.get("inputs", mine["inputs"])
            mine["started"] = secs(v["started"])
            if "completed" in v:
                mine["completed"] = secs(v["completed"])
        for s in status.get("statuses", []):
            if s.get("id") == "process":
                process[s["vertex"]] = (secs(s["started"]), secs(s["completed"]))
            elif s.get("id", "").startswith("staged "):
                staged += secs(s["completed"]) - secs(s["started"])
    wall = end - start
    runs = [d for d, v in vertices.items() if " RUN " in v["name"] and d in process]
    if not runs:
        # A binary older than the process spans and step inputs: its wall only.
        return {"wall": wall}

    def path(weight):
        """The heaviest chain of RUN steps, each weighed by `weight`."""
        best = {}
        def longest(d):
            if d not in best:
                below = max((longest(i) for i in vertices[d]["inputs"] if i in vertices), default=0.0)
                best[d] = below + (weight(d) if d in runs else 0.0)
            return best[d]
        return max(longest(d) for d in vertices)

    step = path(lambda d: vertices[d]["completed"] - vertices[d]["started"])
    proc = path(lambda d: process[d][1] - process[d][0])
    last = max(v["completed"] for v in vertices.values() if not v["name"].startswith("exporting"))
    return {
        "wall": wall,
        "path": step,
        "beyond": 100 * (wall - step) / wall,
        "proc path": proc,
        "proc beyond": 100 * (wall - proc) / wall,
        "first RUN": min(process[d][0] for d in runs) - start,
        "tail": end - last,
        "after RUNs": last - max(process[d][1] for d in runs),
        "staged": staged,
        "RUN processes": sum(process[d][1] - process[d][0] for d in runs),
    }

columns = ["wall", "path", "beyond", "proc path", "proc beyond", "first RUN", "after RUNs", "tail",
           "RUN processes", "staged"]
units = {"beyond": "%", "proc beyond": "%"}
names = ["rbuild", "baseline"]
print(f"Cold builds, median of {runs} (rawjson step times; path = critical path of RUN steps):")
print()
print("| workload | binary | " + " | ".join(c + (", %" if c in units else ", s") for c in columns) + " |")
print("|---|---|" + "---:|" * len(columns))
for w in workloads:
    for b in range(nbins):
        figures = [analyse(f"{tmp}/{w}.{b}.{n}") for n in range(1, runs + 1)]
        cells = []
        for c in columns:
            if c not in figures[0]:
                cells.append("-")
                continue
            m = statistics.median(f[c] for f in figures)
            cells.append(f"{m:.1f}" if c in units else f"{m:.3f}")
        print(f"| {w} | {names[b]} | " + " | ".join(cells) + " |")
EOF
