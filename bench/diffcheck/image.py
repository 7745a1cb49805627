"""Reads an OCI image archive (the tar both engines export) into what the
differential check compares: the final filesystem, entry by entry, as the
layers stack when a runtime applies them, and the image config.

Layers are applied in order as containerd's applier does: `.wh.NAME`
removes NAME and all below it from the layers underneath,
`.wh..wh..opq` empties a directory of what the layers underneath put there,
a directory over a directory updates its metadata and keeps its children,
anything else over an entry replaces it, and parent directories of an entry
are resolved through symlinks inside the root. Hard links share an inode,
so each file records the other paths of its hard-link group."""

import gzip
import hashlib
import io
import json
import posixpath
import subprocess
import tarfile

TYPES = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")


class ImageError(Exception):
    """An archive that is not a readable single-platform OCI image."""


class Archive:
    """The blobs of an OCI image layout stored as a tar."""

    def __init__(self, path):
        with tarfile.open(path) as tar:
            self.files = {m.name.lstrip("./"): tar.extractfile(m).read()
                          for m in tar.getmembers() if m.isfile()}

    def json(self, name):
        """A JSON document of the layout, by file name."""
        try:
            return json.loads(self.files[name])
        except KeyError as e:
            raise ImageError(f"no {name} in the archive") from e

    def blob(self, digest):
        """A blob's bytes, by digest."""
        algo, hexa = digest.split(":", 1)
        try:
            return self.files[f"blobs/{algo}/{hexa}"]
        except KeyError as e:
            raise ImageError(f"blob {digest} missing from the archive") from e

    def manifest(self):
        """The image manifest: index.json's only manifest, through nested indexes."""
        doc = self.json("index.json")
        while True:
            manifests = doc.get("manifests", [])
            if len(manifests) != 1:
                raise ImageError(f"expected one manifest, found {len(manifests)}")
            doc = json.loads(self.blob(manifests[0]["digest"]))
            if doc.get("mediaType") not in INDEX_TYPES and "layers" in doc:
                return doc


def decompress(media_type, data):
    """A layer blob's tar bytes."""
    if "zstd" in media_type:
        return subprocess.run(["zstd", "-dcq"], input=data, capture_output=True,
                              check=True).stdout
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    return data


class Filesystem:
    """A root filesystem built by applying layers, as a map path -> entry."""

    def __init__(self):
        self.entries = {}
        self.next_inode = 0

    def _inode(self):
        self.next_inode += 1
        return self.next_inode

    def resolve_parent(self, path):
        """PATH with every symlink among its parents followed inside the root."""
        parts, out, hops = path.split("/"), [], 0
        while len(parts) > 1:
            part = parts.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                out = out[:-1]
                continue
            here = "/".join(out + [part])
            entry = self.entries.get(here)
            if entry and entry["type"] == "symlink":
                hops += 1
                if hops > 40:
                    raise ImageError(f"symlink loop under /{path}")
                target = entry["target"]
                if target.startswith("/"):
                    out = []
                parts = target.strip("/").split("/") + parts
                continue
            out.append(part)
        return "/".join(out + parts)

    def remove(self, path, keep=frozenset()):
        """Removes PATH and everything below it, except paths in KEEP."""
        prefix = path + "/" if path else ""
        for p in [p for p in self.entries if p == path or p.startswith(prefix)]:
            if p not in keep and p != "":
                del self.entries[p]

    def ensure_parents(self, path):
        """Creates missing parent directories as an applier does (0755, root)."""
        parent = posixpath.dirname(path)
        while parent and parent not in self.entries:
            self.entries[parent] = {"type": "dir", "mode": 0o755, "uid": 0, "gid": 0,
                                    "mtime": 0, "implicit": True}
            parent = posixpath.dirname(parent)

    def apply(self, tar_bytes):
        """Applies one layer (an uncompressed tar)."""
        added = set()
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
            for m in tar:
                name = m.name.strip("/")
                if name.startswith("./"):
                    name = name[2:]
                if name in ("", "."):
                    continue
                name = self.resolve_parent(name)
                base = posixpath.basename(name)
                parent = posixpath.dirname(name)
                if base == ".wh..wh..opq":
                    for p in [p for p in self.entries if p.startswith(parent + "/")]:
                        if p not in added:
                            del self.entries[p]
                    continue
                if base.startswith(".wh."):
                    self.remove(posixpath.join(parent, base[4:]), keep=added)
                    continue
                self.add(tar, m, name)
                added.add(name)

    def add(self, tar, m, name):
        """Puts one tar member at NAME, over whatever is there."""
        old = self.entries.get(name)
        entry = {"mode": m.mode & 0o7777, "uid": m.uid, "gid": m.gid, "mtime": int(m.mtime)}
        xattrs = {k[len("SCHILY.xattr."):]: v for k, v in m.pax_headers.items()
                  if k.startswith("SCHILY.xattr.")}
        if xattrs:
            entry["xattrs"] = xattrs
        if m.islnk():
            target = self.entries.get(self.resolve_parent(m.linkname.strip("/")))
            if target is None or target["type"] != "file":
                raise ImageError(f"hard link /{name} to missing /{m.linkname}")
            if old is not None and old["type"] == "dir":
                self.remove(name)
            self.entries[name] = target
            return
        kind = TYPES.get(m.type)
        if kind is None:
            raise ImageError(f"/{name}: unsupported tar type {m.type!r}")
        entry["type"] = kind
        if kind == "file":
            data = tar.extractfile(m).read()
            entry.update(size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                         inode=self._inode())
        elif kind == "symlink":
            entry["target"] = m.linkname
        elif kind in ("char", "block"):
            entry["device"] = f"{m.devmajor},{m.devminor}"
        if old is not None and not (old["type"] == "dir" and kind == "dir"):
            self.remove(name)
        self.ensure_parents(name)
        self.entries[name] = entry

    def describe(self):
        """Path -> the compared fields, with hard-link groups resolved."""
        groups = {}
        for path, e in self.entries.items():
            if e["type"] == "file":
                groups.setdefault(id(e), []).append(path)
        out = {}
        for path, e in self.entries.items():
            d = {k: v for k, v in e.items() if k not in ("inode", "implicit")}
            d["mode"] = f"{e['mode']:04o}"
            if e["type"] == "file" and len(groups[id(e)]) > 1:
                d["links"] = sorted("/" + p for p in groups[id(e)] if p != path)
            out[path] = d
        return out


CONFIG_KEYS = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts",
               "Volumes", "Labels", "StopSignal", "Healthcheck", "Shell", "OnBuild"]


def config_view(config):
    """The compared parts of an image config; empty values read as absent,
    as Go's omitempty writes them."""
    c = config.get("config") or {}
    view = {k: (c.get(k) if c.get(k) not in ("", [], {}) else None) for k in CONFIG_KEYS}
    history = config.get("history") or []
    view["history"] = {"count": len(history),
                       "empty_layer": [bool(h.get("empty_layer")) for h in history]}
    view["platform"] = f"{config.get('os')}/{config.get('architecture')}"
    return view


def read_image(path):
    """(filesystem description, config view) of the OCI archive at PATH."""
    archive = Archive(path)
    manifest = archive.manifest()
    config = json.loads(archive.blob(manifest["config"]["digest"]))
    fs = Filesystem()
    for layer in manifest["layers"]:
        fs.apply(decompress(layer.get("mediaType", ""), archive.blob(layer["digest"])))
    return fs.describe(), config_view(config)
