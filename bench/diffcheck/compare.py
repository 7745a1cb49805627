"""Field-by-field comparison of two images read by image.py, and of an
image against a hand-written golden (expected.json).

Every field of every path is compared (type, mode, uid, gid, size, content
hash, link target, hard-link group, xattrs, device numbers). Modification
times are compared where BuildKit defines them: when BuildKit's time is
earlier than the start of the builds, it came from a source (the base
image, the context, an HTTP Last-Modified) and rbuild must have the same;
a time from BuildKit's own clock is not compared."""

import hashlib

FIELDS = ["type", "mode", "uid", "gid", "size", "sha256", "target", "links",
          "xattrs", "device"]


def compare_files(fa, fb, started):
    """Differences between rbuild's (FA) and BuildKit's (FB) filesystem
    descriptions: (path, field, rbuild's value, BuildKit's)."""
    out = []
    for path in sorted(set(fa) | set(fb)):
        a, b = fa.get(path), fb.get(path)
        if a is None or b is None:
            out.append(("/" + path, "exists", a is not None, b is not None))
            continue
        for field in FIELDS:
            if a.get(field) != b.get(field):
                out.append(("/" + path, field, a.get(field), b.get(field)))
        ma, mb = a["mtime"], b["mtime"]
        if ma != mb and mb < started:
            out.append(("/" + path, "mtime", ma, mb))
    return out


def compare_configs(ca, cb):
    """Differences between two config views: ("config", key, a, b)."""
    return [("config", k, ca[k], cb[k]) for k in ca if ca[k] != cb.get(k)]


def check_golden(fs, config, golden, context_mtime):
    """Differences between rbuild's image and a golden: every listed path
    must have the listed fields (`content` stands for the file's text, an
    mtime of "context" for the case's context files' time),
    paths under each of `roots` must be exactly the listed ones, and every
    listed config key must match."""
    out = []
    paths = golden.get("paths", {})
    for path, want in paths.items():
        got = fs.get(path.strip("/"))
        if got is None:
            out.append((path, "exists", False, True))
            continue
        for field, value in want.items():
            if field == "content":
                field, value = "sha256", hashlib.sha256(value.encode()).hexdigest()
            elif field == "mtime" and value == "context":
                value = context_mtime
            if got.get(field) != value:
                out.append((path, field, got.get(field), value))
    listed = {p.strip("/") for p in paths}
    for root in golden.get("roots", []):
        root = root.strip("/")
        for path in fs:
            if path.startswith(root + "/") and path not in listed:
                out.append(("/" + path, "exists", True, False))
    for key, value in golden.get("config", {}).items():
        if config.get(key) != value:
            out.append(("config", key, config.get(key), value))
    return out
