//! FROM: a stage's starting state (scratch with BuildKit's defaults, an
//! earlier stage, or a resolved base image), the base's ONBUILD triggers,
//! and the nodes of images named by FROM or `--from`.

use crate::ast::{self, Instruction};
use crate::config::ImageConfig;
use crate::graph::{ImageSource, NodeId, Op};
use crate::stages::Base;
use crate::vars::Vars;
use crate::{BaseImage, FrontendError, ResolvedImage, quote};

use super::{Lowerer, StageState, env_index};

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

impl Lowerer<'_> {
    /// The node of registry image `name` for `platform` (one per image
    /// and platform), and its resolution. Made for a stage's FROM
    /// (`step`: `[stage 1/N]`), it is named as that step; for a
    /// `--from`, `[internal] load …`.
    pub(super) fn image_node(
        &mut self,
        name: &str,
        platform: String,
        ins: &Instruction,
        step: Option<&str>,
    ) -> Result<(NodeId, ResolvedImage), FrontendError> {
        let wanted = BaseImage {
            name: name.to_string(),
            platform,
        };
        let image = self.images.get(&wanted).cloned().ok_or_else(|| {
            self.err(
                ins,
                format!(
                    "base image {} was not resolved for {}",
                    quote::line(name),
                    wanted.platform
                ),
            )
        })?;
        if let Some(n) = self.image_nodes.get(&wanted) {
            return Ok((*n, image));
        }
        let stage_platform = std::mem::replace(&mut self.platform, wanted.platform.clone());
        let n = self.add(
            Op::Image(ImageSource {
                reference: image.reference.clone(),
                digest: image.digest.clone(),
            }),
            Vec::new(),
            match step {
                // As BuildKit names a stage's base: `[stage 1/N] FROM ref@digest`.
                Some(step) => format!("{step} FROM {}@{}", image.reference, image.digest),
                None => format!("[internal] load {}@{}", image.reference, image.digest),
            },
            Some(ins),
        );
        self.platform = stage_platform;
        self.image_nodes.insert(wanted, n);
        Ok((n, image))
    }

    /// The node a `--from` (COPY, or a RUN mount) names: a stage or an
    /// image. An image is always the target platform's, whatever the
    /// stage's (BuildKit makes it a stage of its own without
    /// `--platform`): `COPY --from=alpine` in a `$BUILDPLATFORM` stage
    /// copies from the target platform's alpine.
    pub(super) fn named_source(
        &mut self,
        stage: usize,
        name: &str,
        ins: &Instruction,
    ) -> Result<NodeId, FrontendError> {
        match self.stages.named(name, stage) {
            Base::Stage(j) => Ok(self.stage(j)?.node),
            Base::Image(name) => {
                let target = self.opts.platform.clone();
                Ok(self.image_node(&name, target, ins, None)?.0)
            }
            Base::Scratch => unreachable!("a --from name is a stage or an image"),
        }
    }

    /// Stage `i` lowered (its dependencies first), once: later stages and
    /// `--from`s read it here.
    pub(super) fn stage(&mut self, i: usize) -> Result<&StageState, FrontendError> {
        if !self.done.contains_key(&i) {
            let state = self.lower_stage(i)?;
            self.done.insert(i, state);
        }
        Ok(&self.done[&i])
    }

    /// Lowers stage `i` (its dependencies first, through [`Self::stage`])
    /// for its platform.
    pub(super) fn lower_stage(&mut self, i: usize) -> Result<StageState, FrontendError> {
        let platform = self.stages.platform(self.df, i, &self.meta, self.opts)?;
        let outer = std::mem::replace(&mut self.platform, platform);
        let state = self.lower_stage_body(i);
        self.platform = outer;
        state
    }

    /// [`Self::lower_stage`] once the stage's platform is set.
    fn lower_stage_body(&mut self, i: usize) -> Result<StageState, FrontendError> {
        let from = self.stages.stages[i].from;
        let total = self.stages.stages[i].body.len() + 1;
        let label = self.stage_label(i);
        let mut state = self.start(i, &format!("[{label}1/{total}]"))?;
        // BuildKit makes sure every stage has a PATH.
        if !state.env.contains_key("PATH") {
            Self::set_env(&mut state, "PATH", DEFAULT_PATH);
        }
        // ONBUILD triggers of the base run first, and are not inherited.
        let triggers = self.triggers(&mut state, from)?;
        let body: Vec<&Instruction> = triggers
            .iter()
            .chain(self.stages.stages[i].body.iter().copied())
            .collect();
        for (k, ins) in body.iter().enumerate() {
            let step = format!("[{label}{}/{}]", k + 2, total.max(body.len() + 1));
            self.step(i, &mut state, ins, k + 2, &step)?;
        }
        Ok(state)
    }

    /// The state stage `i` starts in, from its base.
    fn start(&mut self, i: usize, step: &str) -> Result<StageState, FrontendError> {
        let from = self.stages.stages[i].from;
        Ok(match self.stages.base(self.df, i, &self.meta)? {
            Base::Scratch => StageState {
                node: self.add(
                    Op::Scratch,
                    Vec::new(),
                    format!("{step} FROM scratch"),
                    Some(from),
                ),
                config: scratch_config(),
                history: Vec::new(),
                layer_nodes: Vec::new(),
                args: Vec::new(),
                env: Default::default(),
                vars: Vars::default(),
                origins: Default::default(),
                sets: Default::default(),
                cmd_set: false,
                author: None,
            },
            Base::Stage(j) => {
                let mut s = self.stage(j)?.clone();
                s.layer_nodes.clear();
                s.args = Vec::new();
                s.cmd_set = false;
                s
            }
            Base::Image(name) => {
                let platform = self.platform.clone();
                let (node, image) = self.image_node(&name, platform, from, Some(step))?;
                StageState {
                    node,
                    env: env_index(&image.config.env),
                    vars: Vars::from_env(&image.config.env),
                    config: image.config,
                    history: image.history,
                    layer_nodes: Vec::new(),
                    args: Vec::new(),
                    origins: Default::default(),
                    sets: Default::default(),
                    cmd_set: false,
                    author: None,
                }
            }
        })
    }

    /// The base's ONBUILD triggers as instructions at the FROM's position,
    /// taken out of the config (a stage does not inherit them).
    fn triggers(
        &self,
        state: &mut StageState,
        from: &Instruction,
    ) -> Result<Vec<Instruction>, FrontendError> {
        let triggers = state.config.on_build.take().unwrap_or_default();
        triggers
            .iter()
            .map(|t| {
                let mut ins = ast::split_text(t, self.df.directives.escape).map_err(|e| {
                    self.err(
                        from,
                        format!("ONBUILD trigger {}: {}", quote::excerpt(t), e.0),
                    )
                })?;
                ins.line = from.line;
                ins.column = from.column;
                ins.end_line = from.end_line;
                Ok(ins)
            })
            .collect()
    }
}
