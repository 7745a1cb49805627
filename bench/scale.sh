#!/usr/bin/env bash
# Scale curves (issue 19): how build time and peak memory grow with the
# size of the context and the number of layers. Every point is timed as a
# whole process (wall clock) with its peak RSS from /usr/bin/time -v
# ("Maximum resident set size"), the median of RUNS kept:
#   files   contexts of 1k, 10k, 100k and 250k small files (40-1,000 bytes of
#           text, ~520 B on average), 20 files a directory, three directory
#           levels deep (d017/d03/d11/f0001234.txt); the Dockerfile is
#           `FROM scratch` + `COPY . /ctx`, so one layer holds them all
#   layers  images of 10, 50 and 120 layers: `FROM scratch` + one
#           `COPY lNNN /lNNN` per layer, each directory 10 small files
# Scenarios of every point:
#   cold  an empty store (a fresh --root) each run
#   noop  the same build again, nothing changed
#   edit  one file changed (files: one in the middle of the tree; layers: a
#         file of the last layer), then rebuilt
# Runs: 5 for the contexts up to 10k files and for the layer images, 3 for
# 100k and 250k (SCALE_RUNS_SMALL / SCALE_RUNS_BIG override).
# Writes bench/results/scale.csv (one row per point and scenario; a point
# measured again replaces its tool's rows there, every other row is kept)
# and, with TOOLS=buildkit11 (or rbuild,buildkit11), BuildKit 0.11.6's rows
# (buildctl against the buildkitd of scripts/peers-up.sh, whose cache is
# pruned before every cold run). BuildKit's peak RSS is the sum of the
# daemon's peak during the build (its high-water mark reset through
# /proc/PID/clear_refs before the build, VmHWM read after it; the daemon's
# resident baseline included) and buildctl's own; the two peaks need not
# coincide, so it is an upper bound on their joint peak. Then draws
# bench/results/scale.svg with the scaleplot tool (bench/scaleplot/).
#   [TOOLS=rbuild[,buildkit11]] [SIZES=1000,10000,100000,250000]
#   [LAYERS=10,50,120] bench/scale.sh [RBUILD_BINARY]
# The contexts go under $SCALE_DIR (default /var/tmp/rbuild-scale), made
# once and reused (the same bytes every time: a seeded generator); a
# second run on the same SCALE_DIR waits for the first (a lock there: the
# runs edit the same contexts). SIZES= or LAYERS= empty skips that kind.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
cd "$HERE"
TOOLS=${TOOLS:-rbuild}
if [[ -n ${1:-} ]]; then RBUILD=$(realpath "$1"); elif [[ ,$TOOLS, == *,rbuild,* ]]; then
  cargo build --release --quiet
  RBUILD=${CARGO_TARGET_DIR:-$HERE/target}/release/rbuild
else RBUILD=; fi
SIZES=${SIZES-1000,10000,100000,250000}
LAYERS=${LAYERS-10,50,120}
RUNS_SMALL=${SCALE_RUNS_SMALL:-5}
RUNS_BIG=${SCALE_RUNS_BIG:-3}
SCALE_DIR=${SCALE_DIR:-/var/tmp/rbuild-scale}
PEERS_DIR=${PEERS_DIR:-/var/tmp/rbuild-peers}
OUT=$HERE/bench/results
CSV=$OUT/scale.csv
mkdir -p "$OUT" "$SCALE_DIR"
exec 9>"$SCALE_DIR/.lock"
flock -n 9 || { echo "bench/scale.sh: waiting for another run on $SCALE_DIR" >&2; flock 9; }
STORE=$SCALE_DIR/store
TIMES=$(mktemp -d)
trap 'rm -rf "$TIMES" "$STORE"' EXIT

# generate KIND N DIR: makes the context once (KIND files or layers).
generate() {
  [[ -f $3/Dockerfile ]] && return
  rm -rf "$3.tmp"
  python3 - "$1" "$2" "$3.tmp" <<'EOF'
import os, random, sys
kind, n, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(19)
words = [b"alpha", b"beta", b"gamma", b"delta", b"layer", b"cache", b"build", b"image"]
def write(rel, size):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b" ".join(rng.choice(words) for _ in range(size // 6)) + b"\n")
os.makedirs(root, exist_ok=True)
if kind == "files":
    for i in range(n):
        d = i // 20
        write(f"d{d // 400:03}/d{d // 20 % 20:02}/d{d % 20:02}/f{i:07}.txt", rng.randint(40, 1000))
    dockerfile = "FROM scratch\nCOPY . /ctx\n"
else:
    for layer in range(n):
        for i in range(10):
            write(f"l{layer:03}/f{i}.txt", rng.randint(40, 1000))
    dockerfile = "FROM scratch\n" + "".join(f"COPY l{l:03} /l{l:03}\n" for l in range(n))
with open(os.path.join(root, "Dockerfile"), "w") as f:
    f.write(dockerfile)
EOF
  mv "$3.tmp" "$3"
}

# edited_file KIND N DIR: the file the edit scenario changes.
edited_file() {
  if [[ $1 == files ]]; then
    local i=$(($2 / 2)) d=$(($2 / 2 / 20))
    printf '%s/d%03d/d%02d/d%02d/f%07d.txt' "$3" $((d / 400)) $((d / 20 % 20)) $((d % 20)) "$i"
  else
    printf '%s/l%03d/f0.txt' "$3" $(($2 - 1))
  fi
}

# build TOOL CONTEXT: one build, output discarded.
build() {
  case $1 in
    rbuild) "$RBUILD" --root "$STORE" build -q -t scale "$2" ;;
    buildkit11) "$PEERS_DIR/bin/buildctl" --addr "unix://$PEERS_DIR/buildkitd.sock" build --frontend dockerfile.v0 --local context="$2" \
                  --local dockerfile="$2" --output type=image,name=scale ;;
  esac >/dev/null 2>&1
}

empty_cache() {
  case $1 in
    rbuild) rm -rf "$STORE" ;;
    buildkit11) "$PEERS_DIR/bin/buildctl" --addr "unix://$PEERS_DIR/buildkitd.sock" \
                  prune --all >/dev/null 2>&1 || true ;;
  esac
}

# daemon_pid TOOL: the pid of the tool's daemon, empty for rbuild.
daemon_pid() { [[ $1 == buildkit11 ]] && cat "$PEERS_DIR/buildkitd/pid" || true; }

# timed TOOL CONTEXT: one build; appends "seconds kilobytes" to $TIMES/run,
# the kilobytes being the client's peak RSS plus its daemon's (see above).
timed() {
  local t0 t1 pid daemon_kb=0
  pid=$(daemon_pid "$1")
  [[ -n $pid ]] && echo 5 >"/proc/$pid/clear_refs"
  t0=$(date +%s.%N)
  /usr/bin/time -f %M -o "$TIMES/rss" bash -c 'build "$@"' _ "$1" "$2" ||
    { echo "build failed: $1 $2" >&2; exit 1; }
  t1=$(date +%s.%N)
  [[ -n $pid ]] && daemon_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
  echo "$(echo "$t1 - $t0" | bc) $(($(tail -1 "$TIMES/rss") + daemon_kb))" >>"$TIMES/run"
}
export -f build
export RBUILD STORE PEERS_DIR

# median of column $1 of $TIMES/run.
median() { awk -v c="$1" '{print $c}' "$TIMES/run" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# point TOOL KIND N: the three scenarios of one point, a CSV row each.
point() {
  local tool=$1 kind=$2 n=$3 ctx runs scenario file
  ctx=$SCALE_DIR/$kind-$n
  generate "$kind" "$n" "$ctx"
  file=$(edited_file "$kind" "$n" "$ctx")
  runs=$RUNS_SMALL
  [[ $kind == files && $n -gt 10000 ]] && runs=$RUNS_BIG
  for scenario in cold noop edit; do
    : >"$TIMES/run"
    for _ in $(seq "$runs"); do
      case $scenario in
        cold) empty_cache "$tool" ;;
        noop) ;;
        edit) echo "edit $RANDOM$RANDOM" >>"$file" ;;
      esac
      timed "$tool" "$ctx"
    done
    echo "$tool,$kind,$n,$scenario,$runs,$(median 1),$(median 2)" | tee -a "$TIMES/rows"
  done
  grep -v "^$tool,$kind,$n," "$CSV" >"$TIMES/csv" || true
  cat "$TIMES/csv" "$TIMES/rows" >"$CSV"
  rm "$TIMES/rows"
  empty_cache "$tool"
}

HEADER=tool,kind,n,scenario,runs,median_s,median_peak_rss_kb
[[ -f $CSV && $(head -1 "$CSV") == "$HEADER" ]] || echo "$HEADER" >"$CSV"
IFS=, read -ra tools <<<"$TOOLS"
IFS=, read -ra sizes <<<"$SIZES"
IFS=, read -ra layers <<<"$LAYERS"
for tool in "${tools[@]}"; do
  for n in "${sizes[@]}"; do point "$tool" files "$n"; done
  for n in "${layers[@]}"; do point "$tool" layers "$n"; done
done
cargo run --release --quiet -p rbuild-scaleplot -- "$CSV" "$OUT/scale.svg"
echo "wrote $CSV and $OUT/scale.svg"
