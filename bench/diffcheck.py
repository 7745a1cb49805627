#!/usr/bin/env python3
"""Compares two root filesystems and two image configs, as built by rbuild
and by BuildKit from the same Dockerfile. Prints every difference; exits 1
when there is one that is not listed as deliberate.

    diffcheck.py ROOTFS_A ROOTFS_B CONFIG_A.json CONFIG_B.json
"""
import hashlib
import json
import os
import stat
import sys

# Paths whose content legitimately differs between two engines: files the
# runtime itself provides or rewrites.
VOLATILE = {"etc/hosts", "etc/resolv.conf", "etc/hostname"}
# Deliberate: BuildKit leaves the empty mountpoints it created for RUN
# (/dev, /proc, /sys) in the layer when the base image lacks them; rbuild
# removes the stubs it made, so a layer holds only what the step wrote.
MOUNT_STUBS = {"dev", "proc", "sys"}
CONFIG_KEYS = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels",
               "ExposedPorts", "Volumes", "StopSignal", "Healthcheck", "Shell",
               "OnBuild"]


def describe(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            kind = stat.S_IFMT(st.st_mode)
            entry = {"mode": oct(stat.S_IMODE(st.st_mode)), "kind": kind,
                     "owner": f"{st.st_uid}:{st.st_gid}"}
            if stat.S_ISLNK(st.st_mode):
                entry["target"] = os.readlink(full)
            elif stat.S_ISREG(st.st_mode) and rel not in VOLATILE:
                with open(full, "rb") as f:
                    entry["sha256"] = hashlib.sha256(f.read()).hexdigest()
            out[rel] = entry
    return out


def normalize(config):
    c = config.get("config", config) or {}
    return {k: c.get(k) or None for k in CONFIG_KEYS}


def main():
    a, b, ca, cb = sys.argv[1:5]
    fa, fb = describe(a), describe(b)
    diffs = []
    for path in sorted(set(fa) | set(fb)):
        if path in MOUNT_STUBS and path not in fa and fb[path]["kind"] == stat.S_IFDIR:
            continue
        if path not in fa:
            diffs.append(f"only in BuildKit: /{path}")
        elif path not in fb:
            diffs.append(f"only in rbuild: /{path}")
        elif fa[path] != fb[path]:
            diffs.append(f"/{path}: rbuild {fa[path]} BuildKit {fb[path]}")
    with open(ca) as f:
        na = normalize(json.load(f))
    with open(cb) as f:
        nb = normalize(json.load(f))
    for k in CONFIG_KEYS:
        if na[k] != nb[k]:
            diffs.append(f"config {k}: rbuild {na[k]!r} BuildKit {nb[k]!r}")
    for d in diffs:
        print(d)
    print(f"{len(fa)} paths compared, {len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
