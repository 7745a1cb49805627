//! The instructions that only change the image config and history (and,
//! for ARG and ENV, what later words expand with): ARG, ENV, LABEL,
//! MAINTAINER, USER, STOPSIGNAL, EXPOSE, VOLUME, SHELL, CMD, ENTRYPOINT,
//! HEALTHCHECK, ONBUILD. None adds a node.

use std::collections::BTreeSet;

use crate::FrontendError;
use crate::ast::Instruction;
use crate::config::{EmptyObject, Healthcheck};
use crate::expand;
use crate::graph::VarOrigin;
use crate::instructions::expose::PortSpec;
use crate::instructions::signal;
use crate::instructions::{CommandLine, HealthcheckCommand};

use super::{Lowerer, StageState, after_keyword, go_list, shell_form};

impl Lowerer<'_> {
    /// `ARG`: a build arg, its default, or a global ARG's value; the
    /// history shows the defaults as written (expanded).
    pub(super) fn arg(
        &mut self,
        state: &mut StageState,
        ins: &Instruction,
        words: Vec<(String, Option<String>)>,
    ) -> Result<(), FrontendError> {
        // Every word sees the variables of before the instruction
        // (BuildKit 0.11 expands the whole instruction first).
        let mut values = Vec::new();
        let mut shown = Vec::new();
        for (name, default) in words {
            let default = default.map(|d| self.expand(state, ins, &d)).transpose()?;
            shown.push(match &default {
                Some(d) => format!("{name}={d}"),
                None => name.clone(),
            });
            let value = match self.opts.build_args.get(&name) {
                Some(v) => {
                    self.used.insert(name.clone());
                    Some(v.clone())
                }
                // A global ARG of the same name provides the default.
                None => default.or_else(|| self.meta.get(&name)),
            };
            values.push((name, value));
        }
        for (name, value) in values {
            if let Some(v) = &value {
                state.vars.set(&name, v);
                state.record(VarOrigin::Arg, &name, v);
            }
            state.args.push((name, value));
        }
        Self::history(state, format!("ARG {}", shown.join(" ")), true);
        Ok(())
    }

    /// ENV or LABEL (`keyword`): every pair expanded with the variables of
    /// before the instruction, then `set` in order.
    fn key_values(
        &self,
        state: &mut StageState,
        ins: &Instruction,
        keyword: &str,
        pairs: Vec<(String, String)>,
        set: fn(&mut StageState, String, String),
    ) -> Result<(), FrontendError> {
        let expanded = pairs
            .into_iter()
            .map(|(k, v)| Ok((self.expand(state, ins, &k)?, self.expand(state, ins, &v)?)))
            .collect::<Result<Vec<_>, FrontendError>>()?;
        // `KEYWORD k=v k=v`, written in place.
        let mut shown = format!("{keyword} ");
        for (i, (k, v)) in expanded.into_iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            for part in [sep, &k, "=", &v] {
                shown.push_str(part);
            }
            set(state, k, v);
        }
        Self::history(state, shown, true);
        Ok(())
    }

    /// `ENV`.
    pub(super) fn env(
        &self,
        state: &mut StageState,
        ins: &Instruction,
        pairs: Vec<(String, String)>,
    ) -> Result<(), FrontendError> {
        self.key_values(state, ins, "ENV", pairs, |state, k, v| {
            Self::set_env(state, &k, &v);
            state.record(VarOrigin::Env, &k, &v);
        })
    }

    /// `LABEL`.
    pub(super) fn label(
        &self,
        state: &mut StageState,
        ins: &Instruction,
        pairs: Vec<(String, String)>,
    ) -> Result<(), FrontendError> {
        self.key_values(state, ins, "LABEL", pairs, |state, k, v| {
            state.config.labels.insert(k, v);
        })
    }

    /// `MAINTAINER`: the image's author.
    pub(super) fn maintainer(state: &mut StageState, name: String) {
        Self::history(state, format!("MAINTAINER {name}"), true);
        state.author = Some(name);
    }

    /// `USER`.
    pub(super) fn user(
        &self,
        state: &mut StageState,
        ins: &Instruction,
        user: &str,
    ) -> Result<(), FrontendError> {
        state.config.user = self.expand(state, ins, user)?;
        Self::history(state, format!("USER {}", state.config.user), true);
        Ok(())
    }

    /// `STOPSIGNAL`.
    pub(super) fn stop_signal(
        &self,
        state: &mut StageState,
        ins: &Instruction,
        signal: &str,
    ) -> Result<(), FrontendError> {
        let signal = self.expand(state, ins, signal)?;
        signal::check(&signal).map_err(|e| self.err(ins, e))?;
        state.config.stop_signal = signal;
        Self::history(
            state,
            format!("STOPSIGNAL {}", state.config.stop_signal),
            true,
        );
        Ok(())
    }

    /// `EXPOSE`: each word expanded and split, each spec validated.
    pub(super) fn expose(
        &self,
        state: &mut StageState,
        ins: &Instruction,
        specs: &[String],
    ) -> Result<(), FrontendError> {
        let mut ports = BTreeSet::new();
        for word in specs {
            let words =
                expand::expand_words(word, self.df.directives.escape, &|k| Self::lookup(state, k))
                    .and_then(|words| {
                        let bytes = words.iter().map(String::len).sum();
                        self.df.expanded.spend(bytes).map(|()| words)
                    })
                    .map_err(|e| self.err(ins, e))?;
            for p in words {
                let spec =
                    PortSpec::parse(&p).map_err(|e| self.err(ins, format!("EXPOSE: {e}")))?;
                ports.extend(spec.keys());
            }
        }
        // BuildKit 0.11 writes Go's `%v` of the port set: a map, sorted.
        let shown: Vec<String> = ports.iter().map(|p| format!("{p}:{{}}")).collect();
        // A range names up to 65,536 ports: the history line counts
        // against the build's expansion budget, so repeating it is bounded.
        let bytes = shown.iter().map(|s| s.len() + 1).sum();
        self.df
            .expanded
            .spend(bytes)
            .map_err(|e| self.err(ins, e))?;
        for p in ports {
            state.config.exposed_ports.insert(p, EmptyObject {});
        }
        Self::history(state, format!("EXPOSE map[{}]", shown.join(" ")), true);
        Ok(())
    }

    /// `VOLUME`.
    pub(super) fn volume(
        &self,
        state: &mut StageState,
        ins: &Instruction,
        paths: Vec<String>,
    ) -> Result<(), FrontendError> {
        for v in &paths {
            let v = self.expand(state, ins, v)?;
            if v.is_empty() {
                return Err(self.err(ins, "VOLUME specified can not be an empty string"));
            }
            state.config.volumes.insert(v, EmptyObject {});
        }
        Self::history(state, format!("VOLUME {}", go_list(&paths)), true);
        Ok(())
    }

    /// `SHELL`.
    pub(super) fn shell(state: &mut StageState, shell: Vec<String>) {
        Self::history(state, format!("SHELL {}", go_list(&shell)), true);
        state.config.shell = Some(shell);
    }

    /// The argv of CMD or ENTRYPOINT (shell form under the stage's SHELL).
    fn argv(state: &StageState, line: CommandLine) -> Vec<String> {
        if line.json {
            line.args
        } else {
            shell_form(&state.config, line.args.first().map_or("", String::as_str))
        }
    }

    /// `CMD`.
    pub(super) fn cmd(state: &mut StageState, line: CommandLine) {
        let argv = Self::argv(state, line);
        Self::history(state, format!("CMD {}", go_list(&argv)), true);
        state.config.cmd = Some(argv);
        state.cmd_set = true;
    }

    /// `ENTRYPOINT`: resets a CMD inherited from the base.
    pub(super) fn entrypoint(state: &mut StageState, line: CommandLine) {
        let argv = Self::argv(state, line);
        Self::history(state, format!("ENTRYPOINT {}", go_list(&argv)), true);
        state.config.entrypoint = Some(argv);
        if !state.cmd_set {
            state.config.cmd = None;
        }
    }

    /// `HEALTHCHECK`.
    pub(super) fn healthcheck(
        state: &mut StageState,
        ins: &Instruction,
        check: HealthcheckCommand,
    ) {
        state.config.healthcheck = Some(Healthcheck {
            test: check.test,
            interval: check.interval,
            timeout: check.timeout,
            start_period: check.start_period,
            start_interval: check.start_interval,
            retries: check.retries,
        });
        Self::history(state, format!("HEALTHCHECK {}", after_keyword(ins)), true);
    }

    /// `ONBUILD`: a trigger for stages built on this image. BuildKit
    /// records no history entry for it.
    pub(super) fn on_build(state: &mut StageState, trigger: String) {
        state
            .config
            .on_build
            .get_or_insert_with(Vec::new)
            .push(trigger);
    }
}
