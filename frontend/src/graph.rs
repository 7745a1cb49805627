//! The op graph: the frontend's output and the solver's input (like BuildKit's
//! LLB). Every node produces one filesystem state from the states of its
//! inputs. Node definitions serialize deterministically (ordered fields and
//! collections only), so the solver derives vertex digests from them.

use serde::{Deserialize, Serialize};

use crate::config::{History, ImageConfig};
pub use crate::env::Env;
pub use crate::used_vars::UsedVars;

/// Index of a node in [`BuildGraph::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub usize);

/// A source position in the Dockerfile (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Location {
    /// 1-based line of the instruction's first character.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// 1-based last line of the instruction (continuations, heredocs).
    pub end_line: usize,
}

/// The lowered build: nodes in topological order (inputs before users).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildGraph {
    /// All nodes; a node's inputs always have smaller indices.
    pub nodes: Vec<Node>,
    /// The node whose state is the target stage's root filesystem.
    pub target: NodeId,
    /// The target stage's image config (base image config + instructions).
    pub config: ImageConfig,
    /// History of the target stage: base image history, then one entry per
    /// instruction. Entries with `empty_layer == false` that this build adds
    /// correspond, in order, to `layer_nodes`.
    pub history: Vec<History>,
    /// Nodes of the target stage (in order) whose result adds a layer on top
    /// of the stage's base image: RUN, COPY, ADD, WORKDIR when it creates.
    pub layer_nodes: Vec<NodeId>,
    /// Build args given with `--build-arg` that no ARG consumed.
    pub unused_build_args: Vec<String>,
    /// The image's `author` (MAINTAINER, or the base image's).
    pub author: Option<String>,
    /// One-line notices for the user about what the build does not do
    /// (e.g. `# check=` build checks).
    pub warnings: Vec<String>,
    /// The platform the target stage's base image was resolved for when
    /// it is not the target platform: a final `FROM --platform=X image`
    /// (or FROM a stage that is one). BuildKit's image config then names
    /// X when no target platform was asked for (an asked one always
    /// wins); `None` for a scratch-based target (BuildKit's empty image
    /// is the target platform's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_platform: Option<String>,
}

/// One vertex of the graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    /// What the node does.
    pub op: Op,
    /// Input states, by position. The meaning of each position is per op.
    pub inputs: Vec<NodeId>,
    /// Progress name in BuildKit's style, e.g. `[build 2/5] RUN make`.
    pub name: String,
    /// Where the instruction that produced this node is, if any.
    pub location: Option<Location>,
    /// For a step (RUN, COPY, ADD, WORKDIR): what identifies it across
    /// builds and the variables it uses, to explain a cache miss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepInfo>,
    /// The platform the node is for (`os/arch[/variant]`) when it is not
    /// the build's target platform: a node of a `FROM --platform` stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// A step's identity across builds (stage and position, not the text,
/// so an edited instruction is still the same step) and what it uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInfo {
    /// The stage's name, or `stage-N` for the Nth unnamed one.
    pub stage: String,
    /// The instruction's 1-based position in its stage (FROM is 1).
    pub ordinal: usize,
    /// The instruction as written (continuations joined, heredoc bodies
    /// after it).
    pub instruction: String,
    /// The build args and ENV values the Dockerfile set that the step
    /// uses (a RUN all of them, as its environment; other steps those
    /// their words expand), by name.
    pub vars: UsedVars,
}

/// A variable a step uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedVar {
    /// Its name.
    pub name: String,
    /// Which instruction set it.
    pub origin: VarOrigin,
    /// Its value when the step runs.
    pub value: String,
}

/// The instruction that set a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VarOrigin {
    /// `ARG` (its default or a `--build-arg`).
    Arg,
    /// `ENV`.
    Env,
}

/// What a node does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// An empty filesystem (`FROM scratch`).
    Scratch,
    /// A registry image, resolved before lowering. No inputs.
    Image(ImageSource),
    /// Files of the local build context. No inputs.
    Context(ContextSource),
    /// A process run on `inputs[0]` (RUN). Extra inputs feed mounts.
    Exec(ExecOp),
    /// File actions applied to `inputs[0]` (COPY, ADD, WORKDIR).
    File(FileOp),
}

/// A registry image source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSource {
    /// Fully qualified reference, e.g. `docker.io/library/busybox:latest`.
    pub reference: String,
    /// The resolved manifest digest (`sha256:…`): the cache identity.
    pub digest: String,
}

/// The local build context, restricted to what the build selects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextSource {
    /// Paths (context-relative, may hold wildcards) that COPY/ADD select;
    /// only these are read and hashed. Empty means the whole context.
    pub include_patterns: Vec<String>,
    /// `.dockerignore` patterns, in file order (`!` exceptions kept).
    pub exclude_patterns: Vec<String>,
}

/// Network mode of an exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum NetworkMode {
    /// A network namespace of the step's own with outbound access
    /// (BuildKit's default for RUN).
    #[default]
    Default,
    /// The host's network (`RUN --network=host`; needs the build's
    /// `network.host` entitlement).
    Host,
    /// Only a loopback interface.
    None,
}

/// `RUN --security=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Security {
    /// The default sandbox: Docker's capabilities and seccomp filter.
    #[default]
    Sandbox,
    /// All capabilities, no seccomp filter (a build runs it only when
    /// `--allow security.insecure` entitles it).
    Insecure,
}

impl Security {
    /// The default sandbox.
    pub fn is_sandbox(&self) -> bool {
        *self == Security::Sandbox
    }
}

/// A process run (RUN).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecOp {
    /// argv, after SHELL wrapping for shell form.
    pub args: Vec<String>,
    /// Environment as `KEY=value`, in image order (shared with the ops
    /// before it; serialized as a plain list).
    pub env: Env,
    /// Absolute working directory.
    pub cwd: String,
    /// User as written in USER (`name`, `uid`, `name:group`, `uid:gid`); empty = root.
    pub user: String,
    /// Network mode.
    pub network: NetworkMode,
    /// Extra mounts (`RUN --mount`).
    pub mounts: Vec<ExecMount>,
    /// `RUN --security`. Not serialized in the default sandbox, so the
    /// keys of other RUNs do not depend on the field.
    #[serde(default, skip_serializing_if = "Security::is_sandbox")]
    pub security: Security,
    /// What the build's flags add to the sandbox (never the Dockerfile).
    #[serde(default, skip_serializing_if = "SandboxExtras::is_empty")]
    pub extras: SandboxExtras,
}

/// What `build --add-host`, `--ulimit` and `--shm-size` give every RUN, as
/// BuildKit's exec op carries them (so they are part of its key). Empty
/// for a Dockerfile as lowered; the build sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxExtras {
    /// `/etc/hosts` entries: (name, address).
    pub extra_hosts: Vec<(String, String)>,
    /// Resource limits as Docker writes them (`nofile=1024:2048`).
    pub ulimits: Vec<String>,
    /// The size of /dev/shm in bytes.
    pub shm_size: Option<u64>,
}

impl SandboxExtras {
    /// Nothing added.
    pub fn is_empty(&self) -> bool {
        *self == SandboxExtras::default()
    }
}

/// A `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecMount {
    /// Mount point inside the sandbox.
    pub target: String,
    /// What is mounted.
    pub kind: MountKind,
}

/// The kinds of `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MountKind {
    /// A path of another state (`inputs[input]`), read-only unless `readwrite`.
    Bind {
        /// Index into the node's inputs.
        input: usize,
        /// Path inside that state.
        source: String,
        /// Writes allowed (discarded afterwards).
        readwrite: bool,
    },
    /// A persistent cache directory, kept across builds under its id.
    Cache {
        /// Cache id (defaults to the cleaned target).
        id: String,
        /// How concurrent builds share the directory.
        sharing: Sharing,
        /// `uid=` of the cache directory when it is created (default 0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        /// `gid=` of the cache directory when it is created (default 0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gid: Option<u32>,
        /// `mode=` of the cache directory when it is created (BuildKit's
        /// default is 0755 once any of uid, gid, mode is given).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<u32>,
        /// `ro` / `readonly`: mounted read-only.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        readonly: bool,
        /// `from=`: index into the node's inputs of the state whose
        /// `source` path seeds a new cache directory (empty when none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<usize>,
        /// `source=`: path inside the `from` state (`/` when not given).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    /// An empty tmpfs.
    Tmpfs {
        /// `size=` in bytes; no limit (the kernel's default) when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    /// A secret: a file at the target (none when the target is empty) and
    /// optionally an environment variable; only the id and the options
    /// take part in the cache key, never the content.
    Secret {
        /// Secret id.
        id: String,
        /// Fail when the secret is not provided.
        required: bool,
        /// `env=NAME`: also (or, without a target, only) set this
        /// variable to the secret's value for this RUN.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        env: Option<String>,
        /// `mode=` (octal); BuildKit's default is 0400.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<u32>,
        /// `uid=`; default 0.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        /// `gid=`; default 0.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gid: Option<u32>,
    },
    /// The build's ssh agent `id` (`--ssh`) as a socket at the target;
    /// only the id and the options take part in the cache key.
    Ssh {
        /// Agent id (`default` unless given).
        id: String,
        /// Fail when the build has no such agent (else no socket).
        required: bool,
        /// `mode=` (octal); BuildKit's default is 0600.
        mode: u32,
        /// `uid=`; default 0.
        uid: u32,
        /// `gid=`; default 0.
        gid: u32,
    },
}

/// `sharing=` of a cache mount: how concurrent users of one cache id meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// Every build mounts the same directory at once (the default).
    #[default]
    Shared,
    /// A build that finds the directory in use gets a directory of its own.
    Private,
    /// One build at a time; the others wait.
    Locked,
}

/// File actions, applied in order on `inputs[0]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileOp {
    /// The actions.
    pub actions: Vec<FileAction>,
}

/// Owner of created files: `user[:group]` as written (names resolved in the
/// destination's /etc/passwd and /etc/group), or none for 0:0.
pub type Chown = Option<String>;

/// One file action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FileAction {
    /// COPY / ADD: copy `sources` from the state `inputs[source_input]` to `dest`.
    Copy(CopyAction),
    /// Create a directory (WORKDIR).
    Mkdir {
        /// Absolute path.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Owner.
        chown: Chown,
    },
    /// Create a file with the given content (heredocs in COPY).
    Mkfile {
        /// Absolute path.
        path: String,
        /// Content.
        data: Vec<u8>,
        /// Permission bits.
        mode: u32,
        /// Owner.
        chown: Chown,
    },
}

/// COPY/ADD with Docker's semantics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyAction {
    /// Index into the node's inputs of the source state.
    pub source_input: usize,
    /// Source paths relative to the source state's root (for the context,
    /// relative to the context); may contain wildcards.
    pub sources: Vec<String>,
    /// Absolute destination, WORKDIR applied; a trailing `/` is kept.
    pub dest: String,
    /// `--chown`.
    pub chown: Chown,
    /// `--chmod` as written (octal or symbolic).
    pub chmod: Option<String>,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--parents`.
    pub parents: bool,
    /// `--link`: the layer does not depend on what is below it.
    pub link: bool,
    /// ADD: extract tar archives (local sources unless `--unpack=false`;
    /// a remote http source only with `--unpack=true`).
    pub extract_archives: bool,
    /// ADD of a URL / git: the remote source, fetched by the solver.
    pub remote: Option<RemoteSource>,
}

/// A remote ADD source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RemoteSource {
    /// An http(s) URL, with an optional `--checksum`.
    Http {
        /// The URL.
        url: String,
        /// Expected `sha256:…`.
        checksum: Option<String>,
    },
    /// A git repository.
    Git {
        /// The repository URL (with `#ref:subdir`).
        url: String,
        /// `--keep-git-dir`.
        keep_git_dir: bool,
        /// `--checksum`: the commit (full hex sha) the ref must resolve to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checksum: Option<String>,
    },
}
