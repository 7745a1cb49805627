"""One differential case: a directory of testdata/diff/ prepared as a build
context, and built by both engines into OCI archives.

A case directory holds the Dockerfile and its context files, and may hold:
  setup.sh       run (bash, in the copied context) to make what git cannot
                 store: owners, modes, symlinks, hard links, archives;
  flags          build flags, one a line, given to both engines:
                 `--build-arg K=V`, `--target NAME`, `--secret id=ID,src=FILE`
                 (FILE relative to the context);
  fails          both engines must reject the Dockerfile (its text says why);
  expected.json  a hand-written golden for a case BuildKit v0.11.6 cannot
                 read or reads differently from current BuildKit (see
                 compare.check_golden; an mtime of "context" stands for the
                 context files' time; `"fails": true`: rbuild must reject
                 the build, with `"error"` in its message); BuildKit is
                 then not run;
  README         one line on the case; for a golden, why and where in
                 BuildKit's current source the expected values come from.
These files are taken out of the context before the build. In the
Dockerfile, `FROM busybox`, `FROM usrmerge`, `FROM layered` and `from=`/`--from=` of them
name the check's base images, and `http://HTTP/` its HTTP server."""

import os
import re
import shutil
import subprocess
import time
import zlib

CASE_FILES = ("setup.sh", "flags", "fails", "expected.json", "README")
# 2001-09-09 plus up to 12 days: the mtime of every context file, so that
# times a source defines are told from times the build's clock makes. It
# differs from case to case: buildctl's builds reuse one synced copy of
# "context", whose sync skips a file of the same name, size and mtime
# (and main.py prunes that copy after each build, as the sync also keeps
# a reused directory's old mtime).
CONTEXT_MTIME = 1000000000


class Case:
    """A case's source directory and its prepared context."""

    def __init__(self, src, work):
        self.name = os.path.basename(src)
        self.src = src
        self.ctx = os.path.join(work, "ctx", self.name)
        self.out = os.path.join(work, "out", self.name)
        self.mtime = CONTEXT_MTIME + zlib.crc32(self.name.encode()) % 1000000

    def has(self, name):
        """Whether the case directory holds NAME."""
        return os.path.exists(os.path.join(self.src, name))

    def read(self, name):
        """The text of one of the case's files."""
        with open(os.path.join(self.src, name)) as f:
            return f.read()

    def prepare(self, registry, http):
        """Copies the case into its context, runs setup.sh, points the
        Dockerfile at the check's registry and HTTP server, fixes mtimes."""
        shutil.rmtree(self.ctx, ignore_errors=True)
        shutil.copytree(self.src, self.ctx, symlinks=True)
        os.makedirs(self.out, exist_ok=True)
        if self.has("setup.sh"):
            subprocess.run(["bash", "setup.sh"], cwd=self.ctx, check=True,
                           capture_output=True)
        for name in CASE_FILES:
            path = os.path.join(self.ctx, name)
            if os.path.lexists(path):
                os.remove(path)
        dockerfile = os.path.join(self.ctx, "Dockerfile")
        with open(dockerfile) as f:
            text = f.read()
        text = re.sub(r"(?i)(\bFROM\s+|\bfrom=)(busybox|usrmerge|layered)\b",
                      lambda m: f"{m.group(1)}{registry}/{m.group(2)}", text)
        text = text.replace("http://HTTP/", f"http://{http}/")
        with open(dockerfile, "w") as f:
            f.write(text)
        for root, dirs, files in os.walk(self.ctx):
            for name in dirs + files:
                os.utime(os.path.join(root, name), (self.mtime, self.mtime),
                         follow_symlinks=False)
        os.utime(self.ctx, (self.mtime, self.mtime))

    def flags(self):
        """The case's build flags as (flag, value) pairs."""
        if not self.has("flags"):
            return []
        pairs = []
        for line in self.read("flags").splitlines():
            if line.strip():
                flag, value = line.split(None, 1)
                pairs.append((flag, value.strip()))
        return pairs

    def secret(self, value):
        """A `--secret` value with its src made absolute."""
        return re.sub(r"src=([^,]+)", lambda m: f"src={os.path.join(self.ctx, m.group(1))}", value)

    def rbuild_command(self, rbuild, store):
        """rbuild's build of the case into an OCI archive. Both engines
        build without their cache: a hit from another case with the same
        content would bring that case's mtimes."""
        cmd = [rbuild, "--root", store, "build", "-q", "--no-cache", "--source-date-epoch", "none",
               "-o", f"type=oci,dest={self.out}/rbuild.tar"]
        for flag, value in self.flags():
            cmd += [flag, self.secret(value) if flag == "--secret" else value]
        return cmd + [self.ctx]

    def buildkit_command(self, buildctl, addr):
        """BuildKit's build of the case into an OCI archive."""
        cmd = [buildctl, "--addr", addr, "build", "--progress", "plain", "--no-cache",
               "--frontend", "dockerfile.v0",
               "--local", f"context={self.ctx}", "--local", f"dockerfile={self.ctx}",
               "--output", f"type=oci,dest={self.out}/buildkit.tar"]
        for flag, value in self.flags():
            if flag == "--build-arg":
                cmd += ["--opt", f"build-arg:{value}"]
            elif flag == "--target":
                cmd += ["--opt", f"target={value}"]
            elif flag == "--secret":
                cmd += ["--secret", self.secret(value)]
            else:
                raise ValueError(f"{self.name}/flags: unknown flag {flag}")
        return cmd


def prune_synced_contexts(buildctl, addr):
    """Drops BuildKit's synced copies of local contexts, and waits (up to
    about 5 s) until none is left: a copy its last build still holds for a
    moment survives a prune, and the next case's sync would reuse it with
    its directories' old mtimes."""
    for _ in range(20):
        subprocess.run([buildctl, "--addr", addr, "prune", "--filter", "type==source.local"],
                       capture_output=True, check=True)
        left = subprocess.run([buildctl, "--addr", addr, "du", "--filter", "type==source.local",
                               "--format", "{{json .}}"],
                              capture_output=True, text=True, check=True).stdout.strip()
        if left in ("", "null", "[]"):
            return
        time.sleep(0.25)


def run(cmd):
    """Runs a build; (ok, the last lines of its output)."""
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "CI": "true"})
    tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-6:])
    return p.returncode == 0, tail
