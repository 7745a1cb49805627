//! Lowering: the stages the target needs become nodes of the op graph, and
//! the target stage's instructions its image config and history.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::ast::{self, Instruction};
use crate::chmod::Chmod;
use crate::config::{EmptyObject, Healthcheck, History, ImageConfig};
use crate::expand;
use crate::graph::*;
use crate::instructions::expose::PortSpec;
use crate::instructions::mount::{Mount, MountType};
use crate::quote;
use crate::{BuildOptions, Dockerfile, FrontendError, ResolvedImage};

/// Args that every build knows without an ARG (and that are never reported unused).
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// BuildKit's PATH for a stage whose base sets none (`system.DefaultPathEnv`).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The config BuildKit starts a `FROM scratch` stage with (`emptyImage`):
/// WorkingDir `/`; PATH is added as for every stage without one.
fn scratch_config() -> ImageConfig {
    ImageConfig {
        working_dir: String::from("/"),
        ..ImageConfig::default()
    }
}

/// The history comment BuildKit writes.
const COMMENT: &str = "buildkit.dockerfile.v0";

/// One `FROM` and the instructions up to the next.
struct Stage<'a> {
    from: &'a Instruction,
    /// Base as written (before expansion).
    base: String,
    name: Option<String>,
    platform: Option<String>,
    body: Vec<&'a Instruction>,
}

struct Parsed<'a> {
    meta_args: Vec<&'a Instruction>,
    stages: Vec<Stage<'a>>,
}

fn err(file: &str, ins: &Instruction, message: impl Into<String>) -> FrontendError {
    FrontendError::at(file, ins.line, ins.column, message)
}

fn flag<'a>(ins: &'a Instruction, name: &str) -> Option<&'a str> {
    ins.flags.iter().rev().find_map(|f| {
        let f = f.strip_prefix("--")?;
        match f.split_once('=') {
            Some((k, v)) if k == name => Some(v),
            None if f == name => Some("true"),
            _ => None,
        }
    })
}

fn flags_all<'a>(ins: &'a Instruction, name: &str) -> Vec<&'a str> {
    ins.flags
        .iter()
        .filter_map(|f| {
            f.strip_prefix("--")?
                .split_once('=')
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v)
        })
        .collect()
}

/// Rejects flags an instruction does not know.
fn check_flags(file: &str, ins: &Instruction, allowed: &[&str]) -> Result<(), FrontendError> {
    for f in &ins.flags {
        let name = f
            .trim_start_matches("--")
            .split('=')
            .next()
            .unwrap_or_default();
        if !allowed.contains(&name) {
            return Err(err(
                file,
                ins,
                format!(
                    "unknown flag: --{name} for {}",
                    ins.keyword.to_ascii_uppercase()
                ),
            ));
        }
    }
    Ok(())
}

fn split_stages<'a>(df: &'a Dockerfile) -> Result<Parsed<'a>, FrontendError> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage<'a>> = Vec::new();
    for ins in df.instructions() {
        match ins.keyword.as_str() {
            "from" => {
                check_flags(&df.file, ins, &["platform"])?;
                let (base, name) = match ins.args.as_slice() {
                    [b] => (b.clone(), None),
                    [b, as_, n] if as_.eq_ignore_ascii_case("as") => {
                        (b.clone(), Some(n.to_ascii_lowercase()))
                    }
                    _ => {
                        return Err(err(
                            &df.file,
                            ins,
                            "FROM requires either one or three arguments: FROM <image> [AS <name>]",
                        ));
                    }
                };
                if let Some(n) = &name
                    && !n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                {
                    return Err(err(
                        &df.file,
                        ins,
                        format!(
                            "invalid name for build stage: {}, name can't start with a number or contain symbols",
                            quote::excerpt(n)
                        ),
                    ));
                }
                if let Some(n) = &name
                    && stages.iter().any(|s| s.name.as_ref() == Some(n))
                {
                    return Err(err(
                        &df.file,
                        ins,
                        format!("duplicate stage name {}", quote::excerpt(n)),
                    ));
                }
                stages.push(Stage {
                    from: ins,
                    base,
                    name,
                    platform: flag(ins, "platform").map(str::to_string),
                    body: Vec::new(),
                });
            }
            "arg" if stages.is_empty() => meta_args.push(ins),
            _ => match stages.last_mut() {
                Some(s) => s.body.push(ins),
                None => {
                    return Err(err(
                        &df.file,
                        ins,
                        "no build stage in current context: the first instruction must be FROM (ARG may come before it)",
                    ));
                }
            },
        }
    }
    if stages.is_empty() {
        return Err(FrontendError::at(
            &df.file,
            0,
            0,
            "file with no FROM instruction",
        ));
    }
    Ok(Parsed { meta_args, stages })
}

/// Variables in declaration order, with constant-time lookups.
#[derive(Debug, Clone, Default)]
struct Vars {
    list: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl Vars {
    fn get(&self, k: &str) -> Option<String> {
        self.index.get(k).map(|i| self.list[*i].1.clone())
    }

    fn set(&mut self, k: &str, v: &str) {
        match self.index.get(k) {
            Some(i) => self.list[*i].1 = v.to_string(),
            None => {
                self.index.insert(k.to_string(), self.list.len());
                self.list.push((k.to_string(), v.to_string()));
            }
        }
    }

    fn from_env(env: &[String]) -> Self {
        let mut v = Self::default();
        for e in env {
            let (k, val) = e.split_once('=').unwrap_or((e.as_str(), ""));
            v.set(k, val);
        }
        v
    }
}

fn platform_args(platform: &str) -> Vec<(String, String)> {
    let mut parts = platform.split('/');
    let os = parts.next().unwrap_or("linux").to_string();
    let arch = parts.next().unwrap_or("amd64").to_string();
    let variant = parts.next().unwrap_or("").to_string();
    let mut out = Vec::new();
    for prefix in ["TARGET", "BUILD"] {
        out.push((format!("{prefix}PLATFORM"), platform.to_string()));
        out.push((format!("{prefix}OS"), os.clone()));
        out.push((format!("{prefix}ARCH"), arch.clone()));
        out.push((format!("{prefix}VARIANT"), variant.clone()));
    }
    out
}

/// Global ARGs (before the first FROM), for FROM lines.
fn meta_vars(
    df: &Dockerfile,
    parsed: &Parsed<'_>,
    opts: &BuildOptions,
    used: &mut BTreeSet<String>,
) -> Result<Vars, FrontendError> {
    let mut vars = Vars::default();
    for (k, v) in platform_args(&opts.platform) {
        vars.set(&k, &v);
    }
    for ins in &parsed.meta_args {
        // Every word sees the variables of before the instruction.
        let mut values = Vec::new();
        for word in &ins.args {
            let (name, default) = match word.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (word.clone(), None),
            };
            let value = match opts.build_args.get(&name) {
                Some(v) => {
                    used.insert(name.clone());
                    Some(v.clone())
                }
                None => default
                    .map(|d| expand_one(df, ins, &d, &|k| vars.get(k)))
                    .transpose()?,
            };
            values.push((name, value));
        }
        for (name, value) in values {
            if let Some(v) = value {
                vars.set(&name, &v);
            }
        }
    }
    Ok(vars)
}

fn expand_one(
    df: &Dockerfile,
    ins: &Instruction,
    word: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, FrontendError> {
    let out = expand::expand_word(word, df.directives.escape, lookup)
        .and_then(|out| df.expanded.spend(out.len()).map(|()| out));
    out.map_err(|e| err(&df.file, ins, e))
}

/// The index of the stage a `--from`/FROM name refers to, if any.
fn stage_index(parsed: &Parsed<'_>, name: &str, before: usize) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    if let Some(i) = parsed.stages[..before]
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        return Some(i);
    }
    name.parse::<usize>().ok().filter(|i| *i < before)
}

fn target_index(
    df: &Dockerfile,
    parsed: &Parsed<'_>,
    opts: &BuildOptions,
) -> Result<usize, FrontendError> {
    match &opts.target {
        None => Ok(parsed.stages.len() - 1),
        Some(t) => parsed
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
            .ok_or_else(|| {
                FrontendError::at(
                    &df.file,
                    0,
                    0,
                    format!("target stage {} could not be found", quote::excerpt(t)),
                )
            }),
    }
}

/// What a stage starts from.
enum Base {
    Scratch,
    Stage(usize),
    Image(String),
}

fn stage_base(
    df: &Dockerfile,
    parsed: &Parsed<'_>,
    i: usize,
    meta: &Vars,
) -> Result<Base, FrontendError> {
    let s = &parsed.stages[i];
    let base = expand_one(df, s.from, &s.base, &|k| meta.get(k))?;
    if base.is_empty() {
        return Err(err(
            &df.file,
            s.from,
            format!("base name ({}) should not be blank", quote::line(&s.base)),
        ));
    }
    if base.eq_ignore_ascii_case("scratch") {
        return Ok(Base::Scratch);
    }
    if let Some(j) = parsed.stages[..i]
        .iter()
        .position(|st| st.name.as_deref() == Some(base.to_ascii_lowercase().as_str()))
    {
        return Ok(Base::Stage(j));
    }
    Ok(Base::Image(base))
}

/// `--from` of a COPY or RUN mount: a stage or an image.
fn from_ref(parsed: &Parsed<'_>, value: &str, stage: usize) -> Base {
    match stage_index(parsed, value, stage) {
        Some(j) => Base::Stage(j),
        None => Base::Image(value.to_string()),
    }
}

/// The `--from` values of a stage's instructions (COPY and RUN mounts),
/// expanded with the stage's meta args only.
fn dependencies(
    df: &Dockerfile,
    parsed: &Parsed<'_>,
    i: usize,
    meta: &Vars,
) -> Result<Vec<Base>, FrontendError> {
    let mut out = vec![stage_base(df, parsed, i, meta)?];
    for ins in &parsed.stages[i].body {
        let mut values: Vec<String> = Vec::new();
        if matches!(ins.keyword.as_str(), "copy" | "add")
            && let Some(f) = flag(ins, "from")
        {
            values.push(f.to_string());
        }
        if ins.keyword == "run" {
            for m in flags_all(ins, "mount") {
                if let Some(f) = m.split(',').find_map(|kv| kv.strip_prefix("from=")) {
                    values.push(f.to_string());
                }
            }
        }
        for v in values {
            let v = expand_one(df, ins, &v, &|k| meta.get(k))?;
            out.push(from_ref(parsed, &v, i));
        }
    }
    Ok(out)
}

/// Stages the target needs, in order.
fn needed(
    df: &Dockerfile,
    parsed: &Parsed<'_>,
    target: usize,
    meta: &Vars,
) -> Result<Vec<usize>, FrontendError> {
    let mut need = BTreeSet::new();
    let mut stack = vec![target];
    while let Some(i) = stack.pop() {
        if need.insert(i) {
            for d in dependencies(df, parsed, i, meta)? {
                if let Base::Stage(j) = d {
                    stack.push(j);
                }
            }
        }
    }
    Ok(need.into_iter().collect())
}

pub fn base_images(df: &Dockerfile, opts: &BuildOptions) -> Result<Vec<String>, FrontendError> {
    let parsed = split_stages(df)?;
    let mut used = BTreeSet::new();
    let meta = meta_vars(df, &parsed, opts, &mut used)?;
    let target = target_index(df, &parsed, opts)?;
    let mut out = Vec::new();
    for i in needed(df, &parsed, target, &meta)? {
        for d in dependencies(df, &parsed, i, &meta)? {
            if let Base::Image(name) = d
                && !out.contains(&name)
            {
                out.push(name);
            }
        }
    }
    Ok(out)
}

/// The state of a stage while its instructions are lowered.
#[derive(Clone)]
struct StageState {
    node: NodeId,
    config: ImageConfig,
    history: Vec<History>,
    layer_nodes: Vec<NodeId>,
    args: Vars,
    /// `config.env` by name.
    env: Vars,
    cmd_set: bool,
    author: Option<String>,
}

struct Lowerer<'a> {
    df: &'a Dockerfile,
    parsed: Parsed<'a>,
    opts: &'a BuildOptions,
    images: &'a BTreeMap<String, ResolvedImage>,
    meta: Vars,
    used: BTreeSet<String>,
    nodes: Vec<Node>,
    context: NodeId,
    includes: Vec<String>,
    image_nodes: HashMap<String, NodeId>,
    done: HashMap<usize, StageState>,
    multi: bool,
}

fn shell_form(config: &ImageConfig, cmd: &str) -> Vec<String> {
    let mut v = config
        .shell
        .clone()
        .unwrap_or_else(|| vec![String::from("/bin/sh"), String::from("-c")]);
    v.push(cmd.to_string());
    v
}

/// Go's `%q` of a string slice, as BuildKit writes JSON-form history.
fn go_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| crate::dump::quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Docker duration strings (`30s`, `1m30s`, `500ms`) in nanoseconds.
fn duration(s: &str) -> Option<u64> {
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * mult;
    }
    Some(total as u64)
}

impl<'a> Lowerer<'a> {
    fn add(
        &mut self,
        op: Op,
        inputs: Vec<NodeId>,
        name: String,
        ins: Option<&Instruction>,
    ) -> NodeId {
        self.nodes.push(Node {
            op,
            inputs,
            // Shown in progress and in every error of the step: an excerpt.
            name: quote::line(&name),
            location: ins.map(|i| Location {
                line: i.line,
                column: i.column,
                end_line: i.end_line,
            }),
        });
        NodeId(self.nodes.len() - 1)
    }

    /// The single argument of USER, WORKDIR, STOPSIGNAL.
    fn one_arg<'i>(&self, ins: &'i Instruction) -> Result<&'i String, FrontendError> {
        ins.args.first().ok_or_else(|| {
            self.err(
                ins,
                format!(
                    "{} requires exactly one argument",
                    ins.keyword.to_ascii_uppercase()
                ),
            )
        })
    }

    fn err(&self, ins: &Instruction, message: impl Into<String>) -> FrontendError {
        err(&self.df.file, ins, message)
    }

    fn image_node(
        &mut self,
        name: &str,
        ins: &Instruction,
    ) -> Result<(NodeId, ResolvedImage), FrontendError> {
        let image = self.images.get(name).cloned().ok_or_else(|| {
            self.err(
                ins,
                format!("base image {} was not resolved", quote::line(name)),
            )
        })?;
        if let Some(n) = self.image_nodes.get(name) {
            return Ok((*n, image));
        }
        let n = self.add(
            Op::Image(ImageSource {
                reference: image.reference.clone(),
                digest: image.digest.clone(),
            }),
            Vec::new(),
            format!("[internal] load {}@{}", image.reference, image.digest),
            Some(ins),
        );
        self.image_nodes.insert(name.to_string(), n);
        Ok((n, image))
    }

    /// Lowers stage `i` (its dependencies first).
    fn stage(&mut self, i: usize) -> Result<StageState, FrontendError> {
        if let Some(s) = self.done.get(&i) {
            return Ok(s.clone());
        }
        let (from, platform) = {
            let s = &self.parsed.stages[i];
            (s.from, s.platform.clone())
        };
        if let Some(p) = platform {
            let p = expand_one(self.df, from, &p, &|k| self.meta.get(k))?;
            if p != self.opts.platform {
                return Err(self.err(from, format!("FROM --platform={}: building for another platform than {} is not supported yet", quote::line(&p), self.opts.platform)));
            }
        }
        let total = self.parsed.stages[i].body.len() + 1;
        let label = self.stage_label(i);
        let mut state = match stage_base(self.df, &self.parsed, i, &self.meta)? {
            Base::Scratch => StageState {
                node: self.add(
                    Op::Scratch,
                    Vec::new(),
                    format!("[{label}1/{total}] FROM scratch"),
                    Some(from),
                ),
                config: scratch_config(),
                history: Vec::new(),
                layer_nodes: Vec::new(),
                args: Vars::default(),
                env: Vars::default(),
                cmd_set: false,
                author: None,
            },
            Base::Stage(j) => {
                let mut s = self.stage(j)?;
                s.layer_nodes.clear();
                s.args = Vars::default();
                s.cmd_set = false;
                s
            }
            Base::Image(name) => {
                let (node, image) = self.image_node(&name, from)?;
                StageState {
                    node,
                    env: Vars::from_env(&image.config.env),
                    config: image.config.clone(),
                    history: image.history.clone(),
                    layer_nodes: Vec::new(),
                    args: Vars::default(),
                    cmd_set: false,
                    author: None,
                }
            }
        };
        // BuildKit makes sure every stage has a PATH.
        if state.env.get("PATH").is_none() {
            Self::set_env(&mut state, "PATH", DEFAULT_PATH);
        }
        // ONBUILD triggers of the base run first, and are not inherited.
        let triggers = state.config.on_build.take().unwrap_or_default();
        let mut trigger_ins = Vec::new();
        for t in &triggers {
            let mut ins = ast::split_text(t, self.df.directives.escape).map_err(|e| {
                self.err(
                    from,
                    format!("ONBUILD trigger {}: {}", quote::excerpt(t), e.0),
                )
            })?;
            ins.line = from.line;
            ins.column = from.column;
            ins.end_line = from.end_line;
            trigger_ins.push(ins);
        }
        let body: Vec<Instruction> = trigger_ins
            .into_iter()
            .chain(self.parsed.stages[i].body.iter().map(|x| (*x).clone()))
            .collect();
        for (k, ins) in body.iter().enumerate() {
            let step = format!("[{label}{}/{}]", k + 2, total.max(body.len() + 1));
            self.instruction(i, &mut state, ins, &step)?;
        }
        self.done.insert(i, state.clone());
        Ok(state)
    }

    fn stage_label(&self, i: usize) -> String {
        if !self.multi {
            return String::new();
        }
        match &self.parsed.stages[i].name {
            Some(n) => format!("{n} "),
            None => format!("stage-{i} "),
        }
    }

    /// A variable as word expansion in a stage sees it: ENV first, then
    /// the stage's ARGs.
    fn lookup(state: &StageState, k: &str) -> Option<String> {
        state.env.get(k).or_else(|| state.args.get(k))
    }

    fn expand(
        &self,
        state: &StageState,
        ins: &Instruction,
        word: &str,
    ) -> Result<String, FrontendError> {
        expand_one(self.df, ins, word, &|k| Self::lookup(state, k))
    }

    fn history(state: &mut StageState, created_by: String, empty: bool) {
        state.history.push(History {
            created: None,
            created_by,
            comment: String::from(COMMENT),
            empty_layer: empty,
        });
    }

    fn set_env(state: &mut StageState, k: &str, v: &str) {
        let entry = format!("{k}={v}");
        if state.env.get(k).is_some() {
            if let Some(e) = state
                .config
                .env
                .iter_mut()
                .find(|e| e.split('=').next() == Some(k))
            {
                *e = entry;
            }
        } else {
            state.config.env.push(entry);
        }
        state.env.set(k, v);
    }

    fn instruction(
        &mut self,
        stage: usize,
        state: &mut StageState,
        ins: &Instruction,
        step: &str,
    ) -> Result<(), FrontendError> {
        let kw = ins.keyword.as_str();
        let upper = kw.to_ascii_uppercase();
        match kw {
            "arg" => {
                // BuildKit lets ARG's flags pass (and STOPSIGNAL's).
                // Every word sees the variables of before the instruction.
                let mut values = Vec::new();
                for word in &ins.args {
                    let (name, default) = match word.split_once('=') {
                        Some((n, d)) => (n.to_string(), Some(d.to_string())),
                        None => (word.clone(), None),
                    };
                    let value = match self.opts.build_args.get(&name) {
                        Some(v) => {
                            self.used.insert(name.clone());
                            Some(v.clone())
                        }
                        None => match default {
                            Some(d) => Some(self.expand(state, ins, &d)?),
                            // A global ARG of the same name provides the default.
                            None => self.meta.get(&name),
                        },
                    };
                    values.push((name, value));
                }
                for (name, value) in values {
                    if let Some(v) = value {
                        state.args.set(&name, &v);
                    }
                }
            }
            "env" => {
                check_flags(&self.df.file, ins, &[])?;
                if ins.args.is_empty() {
                    return Err(self.err(ins, "ENV requires at least one argument"));
                }
                // Every word sees the environment of before the instruction.
                let mut pairs = Vec::new();
                for kv in ins.args.chunks(3) {
                    pairs.push((
                        self.expand(state, ins, &kv[0])?,
                        self.expand(state, ins, &kv[1])?,
                    ));
                }
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    Self::set_env(state, &k, &v);
                    shown.push(format!("{k}={v}"));
                }
                Self::history(state, format!("ENV {}", shown.join(" ")), true);
            }
            "label" => {
                check_flags(&self.df.file, ins, &[])?;
                let mut shown = Vec::new();
                for kv in ins.args.chunks(3) {
                    let k = self.expand(state, ins, &kv[0])?;
                    let v = self.expand(state, ins, &kv[1])?;
                    shown.push(format!("{k}={v}"));
                    state.config.labels.insert(k, v);
                }
                Self::history(state, format!("LABEL {}", shown.join(" ")), true);
            }
            "maintainer" => {
                check_flags(&self.df.file, ins, &[])?;
                let a = ins.args.first().cloned().unwrap_or_default();
                state.author = Some(a.clone());
                Self::history(state, format!("MAINTAINER {a}"), true);
            }
            "user" => {
                check_flags(&self.df.file, ins, &[])?;
                let u = self.one_arg(ins)?;
                state.config.user = self.expand(state, ins, u)?;
                Self::history(state, format!("USER {}", state.config.user), true);
            }
            "expose" => {
                check_flags(&self.df.file, ins, &[])?;
                let mut ports = BTreeSet::new();
                for word in &ins.args {
                    let words = expand::expand_words(word, self.df.directives.escape, &|k| {
                        Self::lookup(state, k)
                    })
                    .and_then(|words| {
                        let bytes = words.iter().map(String::len).sum();
                        self.df.expanded.spend(bytes).map(|()| words)
                    })
                    .map_err(|e| self.err(ins, e))?;
                    for p in words {
                        let spec = PortSpec::parse(&p)
                            .map_err(|e| self.err(ins, format!("EXPOSE: {e}")))?;
                        ports.extend(spec.keys());
                    }
                }
                // BuildKit 0.11 writes Go's `%v` of the port set: a map, sorted.
                let shown: Vec<String> = ports.iter().map(|p| format!("{p}:{{}}")).collect();
                for p in ports {
                    state.config.exposed_ports.insert(p, EmptyObject {});
                }
                Self::history(state, format!("EXPOSE map[{}]", shown.join(" ")), true);
            }
            "volume" => {
                check_flags(&self.df.file, ins, &[])?;
                for v in &ins.args {
                    let v = self.expand(state, ins, v)?;
                    if v.is_empty() {
                        return Err(self.err(ins, "VOLUME specified can not be an empty string"));
                    }
                    state.config.volumes.insert(v, EmptyObject {});
                }
                Self::history(state, format!("VOLUME {}", go_list(&ins.args)), true);
            }
            "stopsignal" => {
                let s = self.one_arg(ins)?;
                state.config.stop_signal = self.expand(state, ins, s)?;
                Self::history(
                    state,
                    format!("STOPSIGNAL {}", state.config.stop_signal),
                    true,
                );
            }
            "shell" => {
                check_flags(&self.df.file, ins, &[])?;
                if !ins.json || ins.args.is_empty() {
                    return Err(self.err(ins, "SHELL requires the arguments to be in JSON form"));
                }
                state.config.shell = Some(ins.args.clone());
                Self::history(state, format!("SHELL {}", go_list(&ins.args)), true);
            }
            "cmd" | "entrypoint" => {
                check_flags(&self.df.file, ins, &[])?;
                let argv = if ins.json {
                    ins.args.clone()
                } else {
                    shell_form(&state.config, ins.args.first().map_or("", String::as_str))
                };
                if kw == "cmd" {
                    state.config.cmd = Some(argv.clone());
                    state.cmd_set = true;
                } else {
                    state.config.entrypoint = Some(argv.clone());
                    if !state.cmd_set {
                        state.config.cmd = None;
                    }
                }
                Self::history(state, format!("{upper} {}", go_list(&argv)), true);
            }
            "healthcheck" => {
                check_flags(
                    &self.df.file,
                    ins,
                    &[
                        "interval",
                        "timeout",
                        "start-period",
                        "start-interval",
                        "retries",
                    ],
                )?;
                let kind = ins
                    .args
                    .first()
                    .map(|s| s.to_ascii_uppercase())
                    .unwrap_or_default();
                let test = match kind.as_str() {
                    "NONE" => vec![String::from("NONE")],
                    "CMD" if ins.args.len() > 1 => {
                        if ins.json {
                            std::iter::once(String::from("CMD"))
                                .chain(ins.args[1..].iter().cloned())
                                .collect()
                        } else {
                            vec![String::from("CMD-SHELL"), ins.args[1].clone()]
                        }
                    }
                    _ => {
                        return Err(
                            self.err(ins, "HEALTHCHECK must be NONE or CMD followed by a command")
                        );
                    }
                };
                let dur = |name: &str| -> Result<u64, FrontendError> {
                    match flag(ins, name) {
                        None => Ok(0),
                        Some(v) => duration(v).ok_or_else(|| {
                            self.err(ins, format!("invalid --{name}={}", quote::line(v)))
                        }),
                    }
                };
                state.config.healthcheck = Some(Healthcheck {
                    test,
                    interval: dur("interval")?,
                    timeout: dur("timeout")?,
                    start_period: dur("start-period")?,
                    start_interval: dur("start-interval")?,
                    retries: match flag(ins, "retries") {
                        None => 0,
                        Some(v) => v.parse().map_err(|_| {
                            self.err(ins, format!("invalid --retries={}", quote::excerpt(v)))
                        })?,
                    },
                });
                Self::history(state, format!("HEALTHCHECK {}", after_keyword(ins)), true);
            }
            "onbuild" => {
                check_flags(&self.df.file, ins, &[])?;
                let inner = ins
                    .inner
                    .as_ref()
                    .ok_or_else(|| self.err(ins, "ONBUILD requires an instruction"))?;
                if matches!(inner.keyword.as_str(), "onbuild" | "from" | "maintainer") {
                    return Err(self.err(
                        ins,
                        format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            inner.keyword.to_ascii_uppercase()
                        ),
                    ));
                }
                let text = inner.original.clone();
                state
                    .config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(text.clone());
                Self::history(state, format!("ONBUILD {text}"), true);
            }
            "workdir" => {
                check_flags(&self.df.file, ins, &[])?;
                let w = self.one_arg(ins)?;
                let w = self.expand(state, ins, w)?;
                let path = if w.starts_with('/') {
                    w
                } else {
                    format!("{}/{w}", state.config.working_dir.trim_end_matches('/'))
                };
                let path = clean_path(&path);
                state.config.working_dir = path.clone();
                let chown = (!state.config.user.is_empty()).then(|| state.config.user.clone());
                let node = self.add(
                    Op::File(FileOp {
                        actions: vec![FileAction::Mkdir {
                            path: path.clone(),
                            mode: 0o755,
                            chown,
                        }],
                    }),
                    vec![state.node],
                    format!("{step} WORKDIR {path}"),
                    Some(ins),
                );
                state.node = node;
                state.layer_nodes.push(node);
                Self::history(state, format!("WORKDIR {path}"), false);
            }
            "run" => self.run(stage, state, ins, step)?,
            "copy" | "add" => self.copy(stage, state, ins, step)?,
            other => {
                return Err(self.err(
                    ins,
                    format!(
                        "unknown instruction: {}",
                        quote::line(&other.to_ascii_uppercase())
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The environment of a RUN: the image's, plus ARGs ENV does not shadow.
    fn run_env(state: &StageState) -> (Vec<String>, Vec<String>) {
        let mut env = state.config.env.clone();
        let mut args = Vec::new();
        for (k, v) in &state.args.list {
            if state.env.get(k).is_none() {
                env.push(format!("{k}={v}"));
                args.push(format!("{k}={v}"));
            }
        }
        (env, args)
    }

    fn run(
        &mut self,
        stage: usize,
        state: &mut StageState,
        ins: &Instruction,
        step: &str,
    ) -> Result<(), FrontendError> {
        check_flags(&self.df.file, ins, &["mount", "network", "security"])?;
        let insecure = match flag(ins, "security").unwrap_or("sandbox") {
            "sandbox" => false,
            "insecure" => true,
            other => {
                return Err(self.err(
                    ins,
                    format!("RUN --security={other}: expected sandbox or insecure"),
                ));
            }
        };
        let network = match flag(ins, "network").unwrap_or("default") {
            "default" => NetworkMode::Default,
            "host" => NetworkMode::Host,
            "none" => NetworkMode::None,
            other => {
                return Err(self.err(
                    ins,
                    format!("RUN --network={other}: expected default, none or host"),
                ));
            }
        };
        let cmd_text = ins.args.first().cloned().unwrap_or_default();
        let args = if ins.json {
            ins.args.clone()
        } else if !ins.heredocs.is_empty() {
            let simple = ins.heredocs.len() == 1 && is_bare_heredoc(&cmd_text);
            if simple {
                let body = &ins.heredocs[0].content;
                if body.starts_with("#!") {
                    // A script with its own interpreter: run it as a file.
                    vec![
                        String::from("/bin/sh"),
                        String::from("-c"),
                        format!(
                            "cat > /tmp/.rbuild-heredoc <<'{n}'\n{body}{n}\nchmod +x /tmp/.rbuild-heredoc && exec /tmp/.rbuild-heredoc",
                            n = ins.heredocs[0].name
                        ),
                    ]
                } else {
                    shell_form(&state.config, body)
                }
            } else {
                let mut script = cmd_text.clone();
                for h in &ins.heredocs {
                    script.push('\n');
                    script.push_str(&h.content);
                    script.push_str(&h.name);
                }
                shell_form(&state.config, &script)
            }
        } else {
            if cmd_text.is_empty() {
                return Err(self.err(ins, "RUN requires at least one argument"));
            }
            shell_form(&state.config, &cmd_text)
        };
        let (mut env, args_used) = Self::run_env(state);
        let mut inputs = vec![state.node];
        let mut mounts = Vec::new();
        for m in flags_all(ins, "mount") {
            mounts.push(self.mount(stage, state, ins, m, &mut inputs)?);
        }
        ssh_defaults(&mut mounts, &mut env);
        let cwd = if state.config.working_dir.is_empty() {
            String::from("/")
        } else {
            state.config.working_dir.clone()
        };
        let shown = if ins.json {
            go_list(&args)
        } else {
            args.join(" ")
        };
        let node = self.add(
            Op::Exec(ExecOp {
                args,
                env,
                cwd,
                user: state.config.user.clone(),
                network,
                mounts,
                insecure,
            }),
            inputs,
            format!("{step} RUN {}", after_keyword(ins)),
            Some(ins),
        );
        state.node = node;
        state.layer_nodes.push(node);
        let prefix = if args_used.is_empty() {
            String::new()
        } else {
            format!("|{} {} ", args_used.len(), args_used.join(" "))
        };
        Self::history(state, format!("RUN {prefix}{shown} # buildkit"), false);
        Ok(())
    }

    /// One `--mount` of a RUN as an exec mount; a mount from another state
    /// adds that state to `inputs`.
    fn mount(
        &mut self,
        stage: usize,
        state: &StageState,
        ins: &Instruction,
        spec: &str,
        inputs: &mut Vec<NodeId>,
    ) -> Result<ExecMount, FrontendError> {
        let m = Mount::parse(spec, &mut |v| {
            self.expand(state, ins, v).map_err(|e| e.message)
        })
        .map_err(|e| self.err(ins, format!("RUN --mount={}: {e}", quote::line(spec))))?;
        let abs = |t: &str| {
            if t.starts_with('/') {
                t.to_string()
            } else {
                format!("{}/{t}", state.config.working_dir.trim_end_matches('/'))
            }
        };
        let target = m.target.as_deref().map(abs);
        let kind = match m.kind {
            MountType::Bind => {
                let from = match &m.from {
                    Some(f) => self.named_source(stage, f, ins)?,
                    None => self.context,
                };
                if from == self.context {
                    self.includes
                        .push(m.source.clone().unwrap_or_else(|| String::from(".")));
                }
                inputs.push(from);
                MountKind::Bind {
                    input: inputs.len() - 1,
                    source: m.source.clone().unwrap_or_else(|| String::from("/")),
                    readwrite: !m.readonly,
                }
            }
            MountType::Cache => {
                let t = target
                    .as_deref()
                    .ok_or_else(|| self.err(ins, "RUN --mount=type=cache requires a target"))?;
                let from = match &m.from {
                    Some(f) => {
                        inputs.push(self.named_source(stage, f, ins)?);
                        Some(inputs.len() - 1)
                    }
                    None => None,
                };
                MountKind::Cache {
                    id: m.id.clone().unwrap_or_else(|| clean_path(t)),
                    sharing: m.sharing,
                    uid: m.uid,
                    gid: m.gid,
                    mode: m.mode,
                    readonly: m.readonly,
                    from,
                    source: m.source.clone(),
                }
            }
            MountType::Tmpfs => MountKind::Tmpfs { size: m.size },
            MountType::Secret => {
                let id = m.id.clone().or_else(|| m.source.clone()).or_else(|| {
                    target
                        .as_ref()
                        .and_then(|t| t.rsplit('/').next().map(str::to_string))
                });
                let id = id.ok_or_else(|| {
                    self.err(ins, "RUN --mount=type=secret requires an id or a target")
                })?;
                // With env= and no target, the secret is only a variable.
                let t = match (&target, &m.env) {
                    (Some(t), _) => t.clone(),
                    (None, Some(_)) => String::new(),
                    (None, None) => format!("/run/secrets/{id}"),
                };
                return Ok(ExecMount {
                    target: t,
                    kind: MountKind::Secret {
                        id,
                        required: m.required,
                        env: m.env,
                        mode: m.mode,
                        uid: m.uid,
                        gid: m.gid,
                    },
                });
            }
            MountType::Ssh => {
                // No target: BuildKit's /run/buildkit/ssh_agent.N, set by
                // the RUN once it knows N.
                return Ok(ExecMount {
                    target: target.unwrap_or_default(),
                    kind: MountKind::Ssh {
                        id: m.id.unwrap_or_else(|| String::from("default")),
                        required: m.required,
                        mode: m.mode.unwrap_or(0o600),
                        uid: m.uid.unwrap_or(0),
                        gid: m.gid.unwrap_or(0),
                    },
                });
            }
        };
        let t = target.ok_or_else(|| self.err(ins, "RUN --mount requires a target"))?;
        if t == "/" {
            return Err(self.err(ins, "RUN --mount: invalid mount target \"/\""));
        }
        Ok(ExecMount { target: t, kind })
    }

    /// The node a `--from` (COPY, or a RUN mount) names: a stage or an image.
    fn named_source(
        &mut self,
        stage: usize,
        name: &str,
        ins: &Instruction,
    ) -> Result<NodeId, FrontendError> {
        match from_ref(&self.parsed, name, stage) {
            Base::Stage(j) => Ok(self.stage(j)?.node),
            Base::Image(name) => Ok(self.image_node(&name, ins)?.0),
            Base::Scratch => unreachable!("from_ref never returns scratch"),
        }
    }

    fn copy(
        &mut self,
        stage: usize,
        state: &mut StageState,
        ins: &Instruction,
        step: &str,
    ) -> Result<(), FrontendError> {
        let add = ins.keyword == "add";
        let allowed: &[&str] = if add {
            &[
                "chown",
                "chmod",
                "link",
                "exclude",
                "checksum",
                "keep-git-dir",
                "unpack",
            ]
        } else {
            &["from", "chown", "chmod", "link", "parents", "exclude"]
        };
        check_flags(&self.df.file, ins, allowed)?;
        if ins.args.len() < 2 {
            return Err(self.err(ins, format!("{} requires at least two arguments, but only one was provided. Destination could not be determined", ins.keyword.to_ascii_uppercase())));
        }
        let (srcs, dest) = ins.args.split_at(ins.args.len() - 1);
        let dest_raw = self.expand(state, ins, &dest[0])?;
        let wd = if state.config.working_dir.is_empty() {
            "/"
        } else {
            state.config.working_dir.as_str()
        };
        let dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            let joined = format!("{}/{}", wd.trim_end_matches('/'), dest_raw);
            let mut c = clean_path(&joined);
            if dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.") {
                c = format!("{}/", c.trim_end_matches('/'));
            }
            c
        };
        let chown = flag(ins, "chown")
            .map(|c| self.expand(state, ins, c))
            .transpose()?;
        let chmod = flag(ins, "chmod").map(str::to_string);
        let parsed_chmod = chmod
            .as_deref()
            .map(Chmod::parse)
            .transpose()
            .map_err(|e| self.err(ins, e))?;
        let exclude: Vec<String> = flags_all(ins, "exclude")
            .into_iter()
            .map(str::to_string)
            .collect();
        let source_node = match flag(ins, "from") {
            Some(f) => {
                let f = self.expand(state, ins, f)?;
                self.named_source(stage, &f, ins)?
            }
            None => self.context,
        };
        let mut actions = Vec::new();
        let mut local = Vec::new();
        for s in srcs {
            if let Some(h) = s.strip_prefix("<<").and_then(|n| {
                ins.heredocs
                    .iter()
                    .find(|h| h.name == n.trim_start_matches('-').trim_matches(['"', '\'']))
            }) {
                let data = if h.expand {
                    self.expand_heredoc(state, ins, &h.content)?
                } else {
                    h.content.clone()
                };
                let path = if dest.ends_with('/') {
                    format!("{dest}{}", h.name)
                } else {
                    dest.clone()
                };
                actions.push(FileAction::Mkfile {
                    path,
                    data: data.into_bytes(),
                    // BuildKit writes the file 0644, then applies --chmod.
                    mode: parsed_chmod
                        .as_ref()
                        .map_or(0o644, |c| c.apply(0o644, false)),
                    chown: chown.clone(),
                });
                continue;
            }
            let s = self.expand(state, ins, s)?;
            let remote = if add { remote_source(&s, ins) } else { None };
            if let Some(r) = remote {
                actions.push(FileAction::Copy(CopyAction {
                    source_input: 1,
                    sources: Vec::new(),
                    dest: dest.clone(),
                    chown: chown.clone(),
                    chmod: chmod.clone(),
                    exclude: exclude.clone(),
                    parents: false,
                    link: flag(ins, "link").is_some_and(|v| v == "true"),
                    // A remote archive is unpacked only when asked for.
                    extract_archives: flag(ins, "unpack") == Some("true"),
                    remote: Some(r),
                }));
                continue;
            }
            if add && flag(ins, "checksum").is_some() {
                return Err(self.err(ins, "ADD --checksum is only supported for HTTP(S) sources"));
            }
            local.push(s);
        }
        if !local.is_empty() {
            if source_node == self.context {
                self.includes.extend(local.iter().cloned());
            }
            actions.push(FileAction::Copy(CopyAction {
                source_input: 1,
                sources: local,
                dest: dest.clone(),
                chown: chown.clone(),
                chmod,
                exclude,
                parents: flag(ins, "parents").is_some_and(|v| v == "true"),
                link: flag(ins, "link").is_some_and(|v| v == "true"),
                extract_archives: add && flag(ins, "unpack") != Some("false"),
                remote: None,
            }));
        }
        let shown = after_keyword(ins).to_string();
        // Heredocs alone read no source: the step's key is its own content.
        let reads_source = actions.iter().any(|a| matches!(a, FileAction::Copy(_)));
        let inputs = if reads_source {
            vec![state.node, source_node]
        } else {
            vec![state.node]
        };
        let node = self.add(
            Op::File(FileOp { actions }),
            inputs,
            format!("{step} {} {shown}", ins.keyword.to_ascii_uppercase()),
            Some(ins),
        );
        state.node = node;
        state.layer_nodes.push(node);
        Self::history(
            state,
            format!("{} {shown} # buildkit", ins.keyword.to_ascii_uppercase()),
            false,
        );
        Ok(())
    }

    fn expand_heredoc(
        &self,
        state: &StageState,
        ins: &Instruction,
        body: &str,
    ) -> Result<String, FrontendError> {
        // Line by line, so each line has the bound of one expansion.
        let mut out = String::new();
        for line in body.split_inclusive('\n') {
            out.push_str(
                &expand::expand_heredoc(line, &|k| Self::lookup(state, k))
                    .and_then(|line| self.df.expanded.spend(line.len()).map(|()| line))
                    .map_err(|e| self.err(ins, e))?,
            );
        }
        Ok(out)
    }
}

/// The instruction's text after its keyword, as written.
fn after_keyword(ins: &Instruction) -> &str {
    ins.original
        .split_once(char::is_whitespace)
        .map_or("", |x| x.1)
        .trim()
}

/// `RUN <<EOF` (the heredoc alone, maybe `<<-` or quoted).
/// BuildKit's defaults for a RUN's ssh mounts: the Nth without a target
/// gets `/run/buildkit/ssh_agent.N`, and `SSH_AUTH_SOCK` names the first
/// one unless the environment sets it.
fn ssh_defaults(mounts: &mut [ExecMount], env: &mut Vec<String>) {
    let ssh = mounts
        .iter_mut()
        .filter(|m| matches!(m.kind, MountKind::Ssh { .. }));
    let mut first = None;
    for (n, m) in ssh.enumerate() {
        if m.target.is_empty() {
            m.target = format!("/run/buildkit/ssh_agent.{n}");
        }
        first.get_or_insert_with(|| m.target.clone());
    }
    if let Some(target) = first
        && !env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK="))
    {
        env.push(format!("SSH_AUTH_SOCK={target}"));
    }
}

fn is_bare_heredoc(cmd: &str) -> bool {
    let c = cmd.trim();
    c.starts_with("<<") && !c.contains(char::is_whitespace)
}

/// An ADD source that is a URL or a git repository.
fn remote_source(src: &str, ins: &Instruction) -> Option<RemoteSource> {
    let git = src.starts_with("git@")
        || src.starts_with("git://")
        || ((src.starts_with("https://")
            || src.starts_with("http://")
            || src.starts_with("ssh://"))
            && (src.contains(".git#")
                || src.split('#').next().is_some_and(|u| u.ends_with(".git"))));
    if git {
        return Some(RemoteSource::Git {
            url: src.to_string(),
            keep_git_dir: flag(ins, "keep-git-dir").is_some_and(|v| v == "true"),
            checksum: flag(ins, "checksum").map(str::to_string),
        });
    }
    if src.starts_with("http://") || src.starts_with("https://") {
        return Some(RemoteSource::Http {
            url: src.to_string(),
            checksum: flag(ins, "checksum").map(str::to_string),
        });
    }
    None
}

/// `filepath.Clean` for absolute paths.
fn clean_path(p: &str) -> String {
    format!("/{}", crate::ignore::clean(p))
}

pub fn lower(
    df: &Dockerfile,
    opts: &BuildOptions,
    images: &BTreeMap<String, ResolvedImage>,
) -> Result<BuildGraph, FrontendError> {
    let parsed = split_stages(df)?;
    let mut used = BTreeSet::new();
    let meta = meta_vars(df, &parsed, opts, &mut used)?;
    let target = target_index(df, &parsed, opts)?;
    let multi = parsed.stages.len() > 1;
    let mut l = Lowerer {
        df,
        parsed,
        opts,
        images,
        meta,
        used,
        nodes: Vec::new(),
        context: NodeId(0),
        includes: Vec::new(),
        image_nodes: HashMap::new(),
        done: HashMap::new(),
        multi,
    };
    l.context = l.add(
        Op::Context(ContextSource {
            include_patterns: Vec::new(),
            exclude_patterns: opts.ignore_patterns.clone(),
        }),
        Vec::new(),
        String::from("[internal] load build context"),
        None,
    );
    let state = l.stage(target)?;
    let includes = std::mem::take(&mut l.includes);
    if let Op::Context(c) = &mut l.nodes[0].op {
        c.include_patterns = includes;
    }
    let unused_build_args = opts
        .build_args
        .keys()
        .filter(|k| !l.used.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
        .cloned()
        .collect();
    let history = state.history;
    let mut config = state.config;
    if config.on_build.as_ref().is_some_and(Vec::is_empty) {
        config.on_build = None;
    }
    Ok(BuildGraph {
        nodes: l.nodes,
        target: state.node,
        config,
        history,
        layer_nodes: state.layer_nodes,
        unused_build_args,
        author: state.author,
        warnings: df
            .directives
            .check
            .iter()
            .map(|c| format!("# check={c}: build checks do not run yet; the directive is accepted and ignored"))
            .collect(),
    })
}
