//! The key encoding of an op's definition: every field written by name, in
//! an order fixed here, each name and value length-prefixed, so that the
//! bytes (and the cache keys hashed from them) do not depend on how the
//! frontend's structs are declared or serialized. Every op struct is
//! destructured in full, so a new field does not compile until it is
//! given its place here. An absent optional field writes nothing, so a
//! new optional field leaves the keys of ops without it unchanged.

use rbuild_frontend::graph::{
    ContextSource, CopyAction, ExecMount, ExecOp, FileAction, FileOp, ImageSource, MountKind,
    NetworkMode, Op, RemoteSource, SandboxExtras, Security, Sharing,
};

/// The encoding of `op`'s definition.
pub fn definition(op: &Op) -> Vec<u8> {
    let mut e = Encoder::default();
    match op {
        Op::Scratch => e.str("op", "scratch"),
        Op::Image(ImageSource { reference, digest }) => {
            e.str("op", "image");
            e.str("reference", reference);
            e.str("digest", digest);
        }
        Op::Context(ContextSource {
            include_patterns,
            exclude_patterns,
        }) => {
            e.str("op", "context");
            e.strs("include", include_patterns);
            e.strs("exclude", exclude_patterns);
        }
        Op::Exec(exec) => {
            e.str("op", "exec");
            exec_fields(&mut e, exec);
        }
        Op::File(FileOp { actions }) => {
            e.str("op", "file");
            e.list("actions", actions, action);
        }
    }
    e.out
}

fn exec_fields(e: &mut Encoder, op: &ExecOp) {
    let ExecOp {
        args,
        env,
        cwd,
        user,
        network,
        mounts,
        security,
        extras,
    } = op;
    e.strs("args", args);
    // What the sets that made the environment were, in constant time (a
    // RUN after n sets would otherwise write all n: n RUNs, n² entries).
    e.str("env digest", &env.digest());
    e.str("cwd", cwd);
    e.str("user", user);
    let network = match network {
        NetworkMode::Default => "default",
        NetworkMode::Host => "host",
        NetworkMode::None => "none",
    };
    e.str("network", network);
    e.list("mounts", mounts, mount);
    let security = match security {
        Security::Sandbox => "sandbox",
        Security::Insecure => "insecure",
    };
    e.str("security", security);
    // Written only when the build adds something: other keys unchanged.
    let SandboxExtras {
        extra_hosts,
        ulimits,
        shm_size,
    } = extras;
    if !extra_hosts.is_empty() {
        let hosts: Vec<String> = extra_hosts
            .iter()
            .map(|(n, a)| format!("{n}={a}"))
            .collect();
        e.strs("extra_hosts", &hosts);
    }
    if !ulimits.is_empty() {
        e.strs("ulimits", ulimits);
    }
    e.opt_num("shm_size", *shm_size);
}

fn mount(e: &mut Encoder, m: &ExecMount) {
    let ExecMount { target, kind } = m;
    e.str("target", target);
    match kind {
        MountKind::Bind {
            input,
            source,
            readwrite,
        } => {
            e.str("type", "bind");
            e.num("input", *input as u64);
            e.str("source", source);
            e.bool("readwrite", *readwrite);
        }
        MountKind::Cache {
            id,
            sharing,
            uid,
            gid,
            mode,
            readonly,
            from,
            source,
        } => {
            e.str("type", "cache");
            e.str("id", id);
            let sharing = match sharing {
                Sharing::Shared => "shared",
                Sharing::Private => "private",
                Sharing::Locked => "locked",
            };
            e.str("sharing", sharing);
            e.opt_num("uid", uid.map(u64::from));
            e.opt_num("gid", gid.map(u64::from));
            e.opt_num("mode", mode.map(u64::from));
            e.bool("readonly", *readonly);
            e.opt_num("from", from.map(|f| f as u64));
            e.opt_str("source", source.as_deref());
        }
        MountKind::Tmpfs { size } => {
            e.str("type", "tmpfs");
            e.opt_num("size", *size);
        }
        MountKind::Secret {
            id,
            required,
            env,
            mode,
            uid,
            gid,
        } => {
            e.str("type", "secret");
            e.str("id", id);
            e.bool("required", *required);
            e.opt_str("env", env.as_deref());
            e.opt_num("mode", mode.map(u64::from));
            e.opt_num("uid", uid.map(u64::from));
            e.opt_num("gid", gid.map(u64::from));
        }
        MountKind::Ssh {
            id,
            required,
            mode,
            uid,
            gid,
        } => {
            e.str("type", "ssh");
            e.str("id", id);
            e.bool("required", *required);
            e.num("mode", u64::from(*mode));
            e.num("uid", u64::from(*uid));
            e.num("gid", u64::from(*gid));
        }
    }
}

fn action(e: &mut Encoder, a: &FileAction) {
    match a {
        FileAction::Copy(copy) => {
            e.str("action", "copy");
            copy_fields(e, copy);
        }
        FileAction::Mkdir { path, mode, chown } => {
            e.str("action", "mkdir");
            e.str("path", path);
            e.num("mode", u64::from(*mode));
            e.opt_str("chown", chown.as_deref());
        }
        FileAction::Mkfile {
            path,
            data,
            mode,
            chown,
        } => {
            e.str("action", "mkfile");
            e.str("path", path);
            e.bytes("data", data);
            e.num("mode", u64::from(*mode));
            e.opt_str("chown", chown.as_deref());
        }
    }
}

fn copy_fields(e: &mut Encoder, c: &CopyAction) {
    let CopyAction {
        source_input,
        sources,
        dest,
        chown,
        chmod,
        exclude,
        parents,
        link,
        extract_archives,
        remote,
    } = c;
    e.num("source_input", *source_input as u64);
    e.strs("sources", sources);
    e.str("dest", dest);
    e.opt_str("chown", chown.as_deref());
    e.opt_str("chmod", chmod.as_deref());
    e.strs("exclude", exclude);
    e.bool("parents", *parents);
    e.bool("link", *link);
    e.bool("extract_archives", *extract_archives);
    if let Some(remote) = remote {
        e.nested("remote", |e| match remote {
            RemoteSource::Http { url, checksum } => {
                e.str("type", "http");
                e.str("url", url);
                e.opt_str("checksum", checksum.as_deref());
            }
            RemoteSource::Git {
                url,
                keep_git_dir,
                checksum,
            } => {
                e.str("type", "git");
                e.str("url", url);
                e.bool("keep_git_dir", *keep_git_dir);
                e.opt_str("checksum", checksum.as_deref());
            }
        });
    }
}

/// Writes named, length-prefixed fields.
#[derive(Default)]
struct Encoder {
    out: Vec<u8>,
}

impl Encoder {
    /// A field: its name and its value, each after its length (u64 LE).
    fn bytes(&mut self, name: &str, value: &[u8]) {
        for part in [name.as_bytes(), value] {
            self.out
                .extend_from_slice(&(part.len() as u64).to_le_bytes());
            self.out.extend_from_slice(part);
        }
    }

    fn str(&mut self, name: &str, value: &str) {
        self.bytes(name, value.as_bytes());
    }

    fn opt_str(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(name, v);
        }
    }

    /// A number, in decimal.
    fn num(&mut self, name: &str, value: u64) {
        self.str(name, &value.to_string());
    }

    fn opt_num(&mut self, name: &str, value: Option<u64>) {
        if let Some(v) = value {
            self.num(name, v);
        }
    }

    fn bool(&mut self, name: &str, value: bool) {
        self.str(name, if value { "true" } else { "false" });
    }

    /// A field whose value is the encoding of more fields.
    fn nested(&mut self, name: &str, fill: impl FnOnce(&mut Encoder)) {
        let mut inner = Encoder::default();
        fill(&mut inner);
        self.bytes(name, &inner.out);
    }

    /// A list: one nested field `item` per element, in order.
    fn list<T>(&mut self, name: &str, items: &[T], each: fn(&mut Encoder, &T)) {
        self.nested(name, |e| {
            for item in items {
                e.nested("item", |e| each(e, item));
            }
        });
    }

    fn strs(&mut self, name: &str, items: &[String]) {
        self.nested(name, |e| {
            for item in items {
                e.str("item", item);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_named_and_length_prefixed() {
        let mut e = Encoder::default();
        e.str("a", "bc");
        let mut want = Vec::new();
        want.extend_from_slice(&1u64.to_le_bytes());
        want.extend_from_slice(b"a");
        want.extend_from_slice(&2u64.to_le_bytes());
        want.extend_from_slice(b"bc");
        assert_eq!(e.out, want);
    }

    #[test]
    fn sandbox_extras_are_written_only_when_given() {
        let exec = |extras: SandboxExtras| {
            Op::Exec(ExecOp {
                args: vec![String::from("true")],
                env: Vec::new().into(),
                cwd: String::from("/"),
                user: String::new(),
                network: NetworkMode::Default,
                mounts: Vec::new(),
                security: Security::Sandbox,
                extras,
            })
        };
        let plain = definition(&exec(SandboxExtras::default()));
        assert!(!String::from_utf8_lossy(&plain).contains("shm_size"));
        let hosts = |ip: &str| SandboxExtras {
            extra_hosts: vec![(String::from("db"), ip.to_string())],
            ..SandboxExtras::default()
        };
        assert_ne!(definition(&exec(hosts("10.0.0.1"))), plain);
        assert_ne!(
            definition(&exec(hosts("10.0.0.1"))),
            definition(&exec(hosts("10.0.0.2")))
        );
        let shm = SandboxExtras {
            shm_size: Some(1 << 20),
            ..SandboxExtras::default()
        };
        assert_ne!(definition(&exec(shm)), plain);
    }

    #[test]
    fn list_boundaries_are_unambiguous() {
        let exec = |args: &[&str]| {
            Op::Exec(ExecOp {
                args: args.iter().map(|s| s.to_string()).collect(),
                env: Vec::new().into(),
                cwd: String::from("/"),
                user: String::new(),
                network: NetworkMode::Default,
                mounts: Vec::new(),
                security: Security::Sandbox,
                extras: Default::default(),
            })
        };
        assert_ne!(
            definition(&exec(&["ab", "c"])),
            definition(&exec(&["a", "bc"]))
        );
        assert_ne!(definition(&exec(&["a b"])), definition(&exec(&["a", "b"])));
    }

    #[test]
    fn an_absent_option_writes_nothing_and_a_present_one_counts() {
        let tmpfs = |size| {
            let mut e = Encoder::default();
            mount(
                &mut e,
                &ExecMount {
                    target: String::from("/t"),
                    kind: MountKind::Tmpfs { size },
                },
            );
            e.out
        };
        let mut bare = Encoder::default();
        bare.str("target", "/t");
        bare.str("type", "tmpfs");
        assert_eq!(tmpfs(None), bare.out);
        assert_ne!(tmpfs(Some(1)), bare.out);
    }
}
