"""Runs the differential cases (started by bench/diffcheck.sh, which brings
up the peers) and prints every difference and the summary
`differential: N cases, M differences`.

Exit status 1 when a case differs and is not listed in the known list, or
when a listed case no longer differs (the list can only shrink)."""

import argparse
import concurrent.futures
import json
import os
import sys
import threading
import time

from cases import Case, prune_synced_contexts, run
from compare import check_golden, compare_configs, compare_files
from image import read_image

# Held for each case's BuildKit build (see differences()).
BUILDKIT_BUILDS = threading.Lock()


def load_known(path):
    """Case name -> the issue item it waits for, from the known list."""
    known = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line:
                    name, _, why = line.partition(" ")
                    known[name] = why.strip()
    return known


def differences(case, args, started):
    """The differences of one case: (path, field, rbuild, BuildKit or golden)."""
    case.prepare(args.registry, args.http)
    ok_r, tail_r = run(case.rbuild_command(args.rbuild, os.path.join(args.work, "store")))
    if case.has("expected.json"):
        golden = json.loads(case.read("expected.json"))
        if golden.get("fails"):
            if ok_r or golden.get("error", "") not in tail_r:
                return [("build", "fails", "built" if ok_r else tail_r,
                         f"failed, saying {golden.get('error', '')!r}")]
            return []
        if not ok_r:
            return [("build", "status", "failed: " + tail_r, "ok")]
        fs, config = read_image(os.path.join(case.out, "rbuild.tar"))
        return check_golden(fs, config, golden, case.mtime)
    # One BuildKit build at a time, with no synced context before it or
    # after it: BuildKit's sync reuses a synced copy of "context" that no
    # build holds, keeping its directories' mtimes, so a copy another
    # case's build (running beside this one, or just ended and still
    # holding it) leaves behind would bring that case's mtimes.
    with BUILDKIT_BUILDS:
        prune_synced_contexts(args.buildctl, args.buildkit_addr)
        ok_b, tail_b = run(case.buildkit_command(args.buildctl, args.buildkit_addr))
        prune_synced_contexts(args.buildctl, args.buildkit_addr)
    if case.has("fails"):
        if ok_r or ok_b:
            return [("build", "fails", "failed" if not ok_r else "built",
                     "failed" if not ok_b else "built")]
        return []
    if not (ok_r and ok_b):
        return [("build", "status", "ok" if ok_r else "failed: " + tail_r,
                 "ok" if ok_b else "failed: " + tail_b)]
    fa, ca = read_image(os.path.join(case.out, "rbuild.tar"))
    fb, cb = read_image(os.path.join(case.out, "buildkit.tar"))
    return compare_files(fa, fb, started) + compare_configs(ca, cb)


def checked(case, args, started):
    """differences(), with a harness failure reported as one."""
    try:
        return differences(case, args, started)
    except Exception as e:  # noqa: BLE001 -- one broken case must not hide the others
        return [("harness", type(e).__name__, str(e), "")]


def main():
    p = argparse.ArgumentParser()
    for flag in ("--work", "--rbuild", "--buildctl", "--buildkit-addr", "--registry",
                 "--http", "--cases", "--known"):
        p.add_argument(flag, required=True)
    p.add_argument("--jobs", type=int, default=int(os.environ.get("DIFFCHECK_JOBS", "2")))
    p.add_argument("only", nargs="*", help="case names (default: all)")
    args = p.parse_args()
    names = args.only or sorted(n for n in os.listdir(args.cases)
                                if os.path.isfile(os.path.join(args.cases, n, "Dockerfile")))
    cases = [Case(os.path.join(args.cases, n), args.work) for n in names]
    known = load_known(args.known)
    started = int(time.time())
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(names, pool.map(lambda c: checked(c, args, started), cases)))
    unknown = stale = 0
    for name in names:
        diffs = results[name]
        label = f"known difference ({known[name]})" if name in known else "DIFFERENCE"
        peer = "golden" if os.path.exists(os.path.join(args.cases, name, "expected.json")) else "BuildKit"
        for path, field, a, b in diffs:
            print(f"{label}: {name}: {path}: {field}: rbuild {a!r} | {peer} {b!r}")
        if name in known and not diffs:
            print(f"STALE: {name} is listed in {args.known} but no longer differs")
            stale += 1
        if name not in known:
            unknown += len(diffs)
    known_count = sum(len(results[n]) for n in names if n in known)
    print(f"differential: {len(names)} cases, {unknown} differences"
          f" ({known_count} known in {sum(1 for n in names if n in known and results[n])}"
          f" listed cases, {stale} listed cases no longer differ)")
    return 1 if unknown or stale else 0


if __name__ == "__main__":
    sys.exit(main())
