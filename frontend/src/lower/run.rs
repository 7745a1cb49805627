//! RUN: the command (shell or exec form, heredocs), its environment (the
//! image's plus the stage's ARGs), and its `--mount`s, lowered into an exec
//! op on the stage's state; mounts of other states add them as inputs.

use crate::FrontendError;
use crate::ast::Instruction;
use crate::graph::{Env, ExecMount, ExecOp, MountKind, NodeId, Op};
use crate::instructions::RunCommand;
use crate::instructions::mount::{Mount, MountType};
use crate::quote;

use super::{Lowerer, StageState, absolute, after_keyword, clean_path, go_list, shell_form};

/// `RUN <<EOF` (the heredoc alone, maybe `<<-` or quoted).
fn is_bare_heredoc(cmd: &str) -> bool {
    let c = cmd.trim();
    c.starts_with("<<") && !c.contains(char::is_whitespace)
}

/// BuildKit's defaults for a RUN's ssh mounts: the Nth without a target
/// gets `/run/buildkit/ssh_agent.N`, and `SSH_AUTH_SOCK` names the first
/// one unless the environment sets it.
fn ssh_defaults(mounts: &mut [ExecMount], env: &mut Env) {
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
        *env = env.with("SSH_AUTH_SOCK", &target);
    }
}

/// The argv of a RUN: exec form as written; shell form under the stage's
/// SHELL; heredocs as the script (a `#!` script alone runs as a file).
fn run_args(state: &StageState, run: &RunCommand) -> Vec<String> {
    let cmd_text = run.command.args.first().cloned().unwrap_or_default();
    if run.command.json {
        return run.command.args.clone();
    }
    if run.heredocs.is_empty() {
        return shell_form(&state.config, &cmd_text);
    }
    if run.heredocs.len() == 1 && is_bare_heredoc(&cmd_text) {
        let heredoc = &run.heredocs[0];
        let body = &heredoc.content;
        if body.starts_with("#!") {
            // A script with its own interpreter: run it as a file.
            return vec![
                String::from("/bin/sh"),
                String::from("-c"),
                format!(
                    "cat > /tmp/.rbuild-heredoc <<'{n}'\n{body}{n}\nchmod +x /tmp/.rbuild-heredoc && exec /tmp/.rbuild-heredoc",
                    n = heredoc.name
                ),
            ];
        }
        return shell_form(&state.config, body);
    }
    let mut script = cmd_text;
    for h in &run.heredocs {
        script.push('\n');
        script.push_str(&h.content);
        script.push_str(&h.name);
    }
    shell_form(&state.config, &script)
}

/// The environment of a RUN (the stage's variables), and BuildKit's
/// history prefix `|N A=b …` of the stage's own ARGs with their values.
fn run_env(state: &StageState) -> (Env, String) {
    let env = state.vars.env();
    if state.args.is_empty() {
        return (env, String::new());
    }
    let args: Vec<String> = state
        .args
        .iter()
        .map(|(k, v)| {
            let v = state.vars.get(k).or_else(|| v.clone()).unwrap_or_default();
            format!("{k}={v}")
        })
        .collect();
    (env, format!("|{} {} ", args.len(), args.join(" ")))
}

impl Lowerer<'_> {
    /// `RUN`.
    pub(super) fn run(
        &mut self,
        stage: usize,
        state: &mut StageState,
        ins: &Instruction,
        run: RunCommand,
        step: &str,
    ) -> Result<(), FrontendError> {
        let args = run_args(state, &run);
        let (mut env, prefix) = run_env(state);
        let mut inputs = vec![state.node];
        let mut mounts = Vec::new();
        for m in &run.mounts {
            mounts.push(self.mount(stage, state, ins, m, &mut inputs)?);
        }
        ssh_defaults(&mut mounts, &mut env);
        let cwd = if state.config.working_dir.is_empty() {
            String::from("/")
        } else {
            state.config.working_dir.clone()
        };
        let shown = if run.command.json {
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
                network: run.network,
                mounts,
                security: run.security,
                extras: Default::default(),
            }),
            inputs,
            format!("{step} RUN {}", after_keyword(ins)),
            Some(ins),
        );
        state.node = node;
        state.layer_nodes.push(node);
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
        let target = m.target.as_deref().map(|t| absolute(state, t));
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
            MountType::Secret => return self.secret_mount(ins, m, target),
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

    /// A secret mount: its id (`id`, `source`, or the target's name) and
    /// where it goes (`/run/secrets/ID` by default; nowhere with `env=`
    /// and no target).
    fn secret_mount(
        &self,
        ins: &Instruction,
        m: Mount,
        target: Option<String>,
    ) -> Result<ExecMount, FrontendError> {
        let id = m.id.or(m.source).or_else(|| {
            target
                .as_ref()
                .and_then(|t| t.rsplit('/').next().map(str::to_string))
        });
        let id =
            id.ok_or_else(|| self.err(ins, "RUN --mount=type=secret requires an id or a target"))?;
        let t = match (&target, &m.env) {
            (Some(t), _) => t.clone(),
            (None, Some(_)) => String::new(),
            (None, None) => format!("/run/secrets/{id}"),
        };
        Ok(ExecMount {
            target: t,
            kind: MountKind::Secret {
                id,
                required: m.required,
                env: m.env,
                mode: m.mode,
                uid: m.uid,
                gid: m.gid,
            },
        })
    }
}
