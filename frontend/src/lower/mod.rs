//! Lowering (the second half of BuildKit's `dockerfile2llb`): the stages
//! the target needs become nodes of the op graph, and the target stage's
//! instructions its image config and history. Each instruction is typed
//! ([`Command`]) and handed to the module of its family: [`from`] (a
//! stage's start and base images), [`run`], [`copy`] (COPY and ADD),
//! [`workdir`], and [`config`] (the instructions that only change the
//! image config).

mod config;
mod copy;
mod from;
mod run;
mod workdir;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::ast::Instruction;
use crate::chain::Chain;
use crate::config::{History, ImageConfig};
use crate::graph::{
    BuildGraph, ContextSource, Location, Node, NodeId, Op, StepInfo, UsedVar, UsedVars, VarOrigin,
};
use crate::instructions::Command;
use crate::stages::{Base, Stages};
use crate::vars::{Vars, expand_one, instruction_error};
use crate::{BaseImage, BuildOptions, Dockerfile, FrontendError, ResolvedImage, quote};

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

/// The history comment BuildKit writes.
const COMMENT: &str = "buildkit.dockerfile.v0";

/// The state of a stage while its instructions are lowered.
#[derive(Clone)]
struct StageState {
    /// The node holding the stage's filesystem so far.
    node: NodeId,
    config: ImageConfig,
    history: Vec<History>,
    /// Nodes of this stage that add a layer on top of its base image.
    layer_nodes: Vec<NodeId>,
    /// The stage's own ARGs in order (BuildKit's `buildArgs`: not
    /// inherited by a stage FROM this one), with their values if any.
    args: Vec<(String, Option<String>)>,
    /// Where each name of `config.env` is (its first entry).
    env: HashMap<String, usize>,
    /// What words expand with and RUN gets (BuildKit's state env): the
    /// base's environment, then ARG values and ENV as they are set, the
    /// latest winning; a stage FROM this one inherits it.
    vars: Vars,
    /// Which instruction set each variable the Dockerfile set (not
    /// those of the base image's environment); a stage FROM this one
    /// inherits them with `vars`.
    origins: BTreeMap<String, VarOrigin>,
    /// The same sets with their values, in order, shared: what a RUN uses.
    sets: Chain<UsedVar>,
    /// CMD was set in this stage (ENTRYPOINT then keeps it).
    cmd_set: bool,
    author: Option<String>,
}

/// Lowering of one build: the graph so far and what is known of stages.
struct Lowerer<'a> {
    df: &'a Dockerfile,
    stages: Stages<'a>,
    opts: &'a BuildOptions,
    images: &'a BTreeMap<BaseImage, ResolvedImage>,
    /// The platform of the stage being lowered (nodes are for it).
    platform: String,
    /// The global ARGs.
    meta: Vars,
    /// Build args some ARG consumed.
    used: BTreeSet<String>,
    nodes: Vec<Node>,
    /// The build context's node.
    context: NodeId,
    /// Context paths COPY/ADD and bind mounts select.
    includes: Vec<String>,
    image_nodes: HashMap<BaseImage, NodeId>,
    /// Stages lowered so far, by index.
    done: HashMap<usize, StageState>,
    /// More than one stage: step names carry the stage's name.
    multi: bool,
    /// The variables the words of the instruction being lowered expanded.
    expanded: RefCell<BTreeSet<String>>,
}

/// Where each name of an image's `KEY=value` environment is (its first
/// entry).
fn env_index(env: &[String]) -> HashMap<String, usize> {
    let mut index = HashMap::new();
    for (i, e) in env.iter().enumerate() {
        let name = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        index.entry(name.to_string()).or_insert(i);
    }
    index
}

/// The argv of a shell-form command under the stage's SHELL.
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

/// The instruction's text after its keyword, as written.
fn after_keyword(ins: &Instruction) -> &str {
    ins.original
        .split_once(char::is_whitespace)
        .map_or("", |x| x.1)
        .trim()
}

/// `filepath.Clean` for absolute paths.
fn clean_path(p: &str) -> String {
    format!("/{}", crate::ignore::clean(p))
}

/// `path` made absolute against the stage's working directory.
fn absolute(state: &StageState, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{path}", state.config.working_dir.trim_end_matches('/'))
    }
}

impl StageState {
    /// Records that the Dockerfile (an ARG or ENV) set `name` to `value`
    /// in `vars`.
    fn record(&mut self, origin: VarOrigin, name: &str, value: &str) {
        self.origins.insert(name.to_string(), origin);
        self.sets = self.sets.with(UsedVar {
            name: name.to_string(),
            origin,
            value: value.to_string(),
        });
    }

    /// The variables of `names` that the Dockerfile set, by name.
    fn expanded_vars(&self, names: &BTreeSet<String>) -> UsedVars {
        let vars = names.iter().filter_map(|name| {
            Some(UsedVar {
                name: name.clone(),
                origin: *self.origins.get(name)?,
                value: self.vars.get(name)?,
            })
        });
        UsedVars::from(vars.collect::<Vec<_>>())
    }
}

impl<'a> Lowerer<'a> {
    /// Appends a node; `ins` gives its location.
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
            step: None,
            platform: (self.platform != self.opts.platform).then(|| self.platform.clone()),
        });
        NodeId(self.nodes.len() - 1)
    }

    fn err(&self, ins: &Instruction, message: impl Into<String>) -> FrontendError {
        instruction_error(self.df, ins, message)
    }

    /// A variable as word expansion in a stage sees it.
    fn lookup(state: &StageState, k: &str) -> Option<String> {
        state.vars.get(k)
    }

    /// Expands one word of `ins` in the stage's current environment.
    fn expand(
        &self,
        state: &StageState,
        ins: &Instruction,
        word: &str,
    ) -> Result<String, FrontendError> {
        expand_one(self.df, ins, word, &|k| {
            let mut expanded = self.expanded.borrow_mut();
            if !expanded.contains(k) {
                expanded.insert(k.to_string());
            }
            Self::lookup(state, k)
        })
    }

    /// Lowers instruction `ins`, the `ordinal`th of stage `stage`, and
    /// marks the steps it adds with their identity and the variables they
    /// use (see [`StepInfo`]).
    fn step(
        &mut self,
        stage: usize,
        state: &mut StageState,
        ins: &Instruction,
        ordinal: usize,
        step: &str,
    ) -> Result<(), FrontendError> {
        // An earlier stage lowered on the way (a `--from`) keeps its own.
        let outer = self.expanded.take();
        let first = self.nodes.len();
        let lowered = self.instruction(stage, state, ins, step);
        let expanded = self.expanded.replace(outer);
        lowered?;
        for i in first..self.nodes.len() {
            let node = &self.nodes[i];
            if node.step.is_some() || !matches!(node.op, Op::Exec(_) | Op::File(_)) {
                continue;
            }
            let vars = if matches!(node.op, Op::Exec(_)) {
                UsedVars::latest_of(state.sets.clone())
            } else {
                state.expanded_vars(&expanded)
            };
            self.nodes[i].step = Some(self.step_info(stage, ins, ordinal, vars));
        }
        Ok(())
    }

    /// The identity of instruction `ins` of stage `stage` as a step that
    /// uses `vars` (see [`StepInfo`]).
    fn step_info(
        &self,
        stage: usize,
        ins: &Instruction,
        ordinal: usize,
        vars: UsedVars,
    ) -> StepInfo {
        let stage_name = match self.stages.stages[stage].name() {
            Some(n) => n.to_string(),
            None => format!("stage-{stage}"),
        };
        let mut instruction = ins.original.clone();
        for heredoc in &ins.heredocs {
            instruction.push('\n');
            instruction.push_str(&heredoc.content);
            instruction.push_str(&heredoc.name);
        }
        StepInfo {
            stage: stage_name,
            ordinal,
            instruction,
            vars,
        }
    }

    fn history(state: &mut StageState, created_by: String, empty: bool) {
        state.history.push(History {
            created: None,
            created_by,
            comment: String::from(COMMENT),
            empty_layer: empty,
        });
    }

    /// Sets an ENV variable in the config (in place if it exists).
    fn set_env(state: &mut StageState, k: &str, v: &str) {
        let entry = format!("{k}={v}");
        match state.env.get(k) {
            Some(&i) => state.config.env[i] = entry,
            None => {
                state.env.insert(k.to_string(), state.config.env.len());
                state.config.env.push(entry);
            }
        }
        state.vars.set(k, v);
    }

    /// `[name ]` of stage `i` in step names (empty for a single stage).
    fn stage_label(&self, i: usize) -> String {
        if !self.multi {
            return String::new();
        }
        match self.stages.stages[i].name() {
            Some(n) => format!("{n} "),
            None => format!("stage-{i} "),
        }
    }

    /// Lowers one instruction of stage `stage`; `step` is its `[i/n]`.
    fn instruction(
        &mut self,
        stage: usize,
        state: &mut StageState,
        ins: &Instruction,
        step: &str,
    ) -> Result<(), FrontendError> {
        let command = Command::parse(ins).map_err(|e| self.err(ins, e))?;
        match command {
            Command::Arg(words) => self.arg(state, ins, words)?,
            Command::Env(pairs) => self.env(state, ins, pairs)?,
            Command::Label(pairs) => self.label(state, ins, pairs)?,
            Command::Maintainer(name) => Self::maintainer(state, name),
            Command::User(user) => self.user(state, ins, &user)?,
            Command::Workdir(path) => self.workdir(state, ins, &path, step)?,
            Command::StopSignal(signal) => self.stop_signal(state, ins, &signal)?,
            Command::Expose(ports) => self.expose(state, ins, &ports)?,
            Command::Volume(paths) => self.volume(state, ins, paths)?,
            Command::Shell(shell) => Self::shell(state, shell),
            Command::Cmd(line) => Self::cmd(state, line),
            Command::Entrypoint(line) => Self::entrypoint(state, line),
            Command::Healthcheck(check) => Self::healthcheck(state, ins, check),
            Command::OnBuild(trigger) => Self::on_build(state, trigger),
            Command::Run(run) => self.run(stage, state, ins, run, step)?,
            Command::Copy(copy) => self.copy(stage, state, ins, copy, step)?,
        }
        Ok(())
    }
}

/// Lowers the stages the target needs (see [`Dockerfile::lower`]).
pub(crate) fn lower(
    df: &Dockerfile,
    opts: &BuildOptions,
    images: &BTreeMap<BaseImage, ResolvedImage>,
) -> Result<BuildGraph, FrontendError> {
    let stages = Stages::split(df)?;
    let mut used = BTreeSet::new();
    let meta = stages.meta_vars(df, opts, &mut used)?;
    let target = stages.target(df, opts)?;
    let multi = stages.stages.len() > 1;
    let mut l = Lowerer {
        df,
        stages,
        opts,
        images,
        platform: opts.platform.clone(),
        meta,
        used,
        // About one node per instruction: reserved once, so that a long
        // Dockerfile's node list is not copied over and over as it grows.
        nodes: Vec::with_capacity(df.instructions.len() + 1),
        context: NodeId(0),
        includes: Vec::new(),
        image_nodes: HashMap::new(),
        done: HashMap::new(),
        multi,
        expanded: RefCell::default(),
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
    let base_platform = match l.stages.root(df, target, &l.meta)? {
        Base::Image(_) => {
            Some(l.stages.platform(df, target, &l.meta, opts)?).filter(|p| *p != opts.platform)
        }
        Base::Scratch | Base::Stage(_) => None,
    };
    // No stage reads the target (only earlier stages), so it is not kept.
    let state = l.lower_stage(target)?;
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
            .map(|c| {
                format!(
                    "# check={c}: build checks do not run yet; the directive is accepted and ignored"
                )
            })
            .collect(),
        base_platform,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::StepInfo;

    /// The step info of every step `source` lowers to, with `args`.
    fn steps(source: &str, args: &[(&str, &str)]) -> Vec<StepInfo> {
        let df = Dockerfile::parse("Dockerfile", source.as_bytes()).unwrap();
        let opts = BuildOptions {
            platform: String::from("linux/amd64"),
            build_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..BuildOptions::default()
        };
        let graph = df.lower(&opts, &BTreeMap::new()).unwrap();
        graph.nodes.into_iter().filter_map(|n| n.step).collect()
    }

    fn names(step: &StepInfo) -> Vec<(&str, VarOrigin, &str)> {
        (step.vars.iter())
            .map(|v| (v.name.as_str(), v.origin, v.value.as_str()))
            .collect()
    }

    #[test]
    fn a_run_uses_every_variable_the_dockerfile_set_and_a_copy_those_it_expands() {
        let steps = steps(
            "FROM scratch AS app\nARG DIR=src\nARG UNUSED=1\nENV MODE=debug\n\
             COPY $DIR/ /app/\nRUN make\nWORKDIR /w\n",
            &[("DIR", "lib")],
        );
        let [copy, run, workdir] = &steps[..] else {
            panic!("three steps: {steps:?}")
        };
        assert_eq!((copy.stage.as_str(), copy.ordinal), ("app", 5));
        assert_eq!(copy.instruction, "COPY $DIR/ /app/");
        assert_eq!(names(copy), [("DIR", VarOrigin::Arg, "lib")]);
        assert_eq!(run.ordinal, 6);
        assert_eq!(
            names(run),
            [
                ("DIR", VarOrigin::Arg, "lib"),
                ("MODE", VarOrigin::Env, "debug"),
                ("UNUSED", VarOrigin::Arg, "1"),
            ]
        );
        assert_eq!(names(workdir), []);
    }

    #[test]
    fn an_unnamed_stage_is_named_by_its_index_and_a_heredoc_body_is_part_of_the_text() {
        let steps = steps("FROM scratch\nFROM scratch\nRUN <<EOF\necho hi\nEOF\n", &[]);
        assert_eq!(steps[0].stage, "stage-1");
        assert_eq!(steps[0].instruction, "RUN <<EOF\necho hi\nEOF");
    }
}
