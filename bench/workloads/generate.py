#!/usr/bin/env python3
"""Makes the benchmark's build contexts, the same bytes on every machine.

    bench/workloads/generate.py DEST

DEST/w1-multistage   the Dockerfile alone (its stages make their own data)
DEST/w2-bigcontext   20,000 text files of 0.5-7.5 KB in 400 directories
                     (~80 MB), 16 files of 8 MiB under assets/ (every other
                     one random, so incompressible), and a node_modules/ of
                     5,000 files that its .dockerignore drops
DEST/w3-typical-app  deps.lock (2,000 lines) and src/: 600 C-like files of
                     ~10 KB in 20 directories (~6 MB)
Each workload's Dockerfile comes from bench/workloads/<name>/.
"""

import os
import random
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = ("w1-multistage", "w2-bigcontext", "w3-typical-app")
WORDS = [b"alpha", b"beta", b"gamma", b"delta", b"layer", b"cache", b"build", b"image"]


class Writer:
    """Writes files under a root from one seeded random stream."""

    def __init__(self, root, seed):
        self.root = root
        self.rng = random.Random(seed)

    def file(self, rel, data):
        """Writes DATA at ROOT/REL, making its directory."""
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def text(self, size):
        """About SIZE bytes of words, ending in a newline."""
        return b" ".join(self.rng.choice(WORDS) for _ in range(size // 6)) + b"\n"


def big_context(root):
    """w2: many small files, a few big ones, and an ignored node_modules/."""
    w = Writer(root, 2)
    for i in range(20000):
        w.file(f"src/d{i % 400:03}/f{i:05}.txt", w.text(w.rng.randint(500, 7500)))
    for i in range(16):
        w.file(f"assets/blob{i:02}.bin", w.rng.randbytes(8 << 20) if i % 2 else w.text(8 << 20))
    for i in range(5000):
        w.file(f"node_modules/m{i % 100:02}/index{i}.js", w.text(300))
    w.file(".dockerignore", b"node_modules\n**/*.tmp\n")


def typical_app(root):
    """w3: a dependency lock file and C-like sources."""
    w = Writer(root, 3)
    w.file("deps.lock", b"".join(b"pkg%d==1.%d\n" % (i, i % 7) for i in range(2000)))
    for i in range(600):
        w.file(f"src/mod{i % 20:02}/unit{i:04}.c", b"/* unit %d */\n" % i + w.text(10000))


def main():
    dest = os.path.abspath(sys.argv[1])
    for name in WORKLOADS:
        shutil.rmtree(os.path.join(dest, name), ignore_errors=True)
        shutil.copytree(os.path.join(HERE, name), os.path.join(dest, name))
    big_context(os.path.join(dest, "w2-bigcontext"))
    typical_app(os.path.join(dest, "w3-typical-app"))
    print(f"workloads in {dest}")


if __name__ == "__main__":
    main()
