//! Stage analysis (the first half of BuildKit's `dockerfile2llb`): the
//! Dockerfile split into global ARGs and stages, the global ARG values,
//! the target stage, what each stage starts from and reads (`--from` of
//! COPY and RUN mounts), and so which stages and base images the target
//! needs. Unused stages are never lowered.

use std::collections::BTreeSet;

use crate::ast::Instruction;
use crate::instructions::FromCommand;
use crate::instructions::flags::Flags;
use crate::instructions::mount::from_value;
use crate::vars::{Vars, expand_one, instruction_error, platform_args};
use crate::{BaseImage, BuildOptions, Dockerfile, FrontendError, quote};

/// One `FROM` and the instructions up to the next.
pub(crate) struct Stage<'a> {
    /// The FROM instruction.
    pub from: &'a Instruction,
    /// FROM, typed (base as written, before expansion).
    pub command: FromCommand,
    /// The instructions of the stage, in order.
    pub body: Vec<&'a Instruction>,
}

impl Stage<'_> {
    /// The stage's name (`AS name`, lower-cased), if any.
    pub fn name(&self) -> Option<&str> {
        self.command.name.as_deref()
    }
}

/// The Dockerfile as stages.
pub(crate) struct Stages<'a> {
    /// ARGs before the first FROM.
    pub meta_args: Vec<&'a Instruction>,
    /// The stages, in file order.
    pub stages: Vec<Stage<'a>>,
}

/// What a stage (or a `--from`) starts from.
pub(crate) enum Base {
    /// The empty filesystem.
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// A registry image, as written (ARGs expanded).
    Image(String),
}

impl<'a> Stages<'a> {
    /// Splits the instructions of `df` into stages.
    pub fn split(df: &'a Dockerfile) -> Result<Self, FrontendError> {
        let mut meta_args = Vec::new();
        let mut stages: Vec<Stage<'a>> = Vec::new();
        for ins in df.instructions() {
            match ins.keyword.as_str() {
                "from" => {
                    let command =
                        FromCommand::parse(ins).map_err(|e| instruction_error(df, ins, e))?;
                    if let Some(n) = &command.name
                        && stages.iter().any(|s| s.name() == Some(n.as_str()))
                    {
                        return Err(instruction_error(
                            df,
                            ins,
                            format!("duplicate stage name {}", quote::excerpt(n)),
                        ));
                    }
                    stages.push(Stage {
                        from: ins,
                        command,
                        body: Vec::new(),
                    });
                }
                "arg" if stages.is_empty() => meta_args.push(ins),
                _ => match stages.last_mut() {
                    Some(s) => s.body.push(ins),
                    None => {
                        return Err(instruction_error(
                            df,
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
        Ok(Self { meta_args, stages })
    }

    /// The global ARGs (before the first FROM) with the platform args, as
    /// FROM lines see them; build args they consume go into `used`.
    pub fn meta_vars(
        &self,
        df: &Dockerfile,
        opts: &BuildOptions,
        used: &mut BTreeSet<String>,
    ) -> Result<Vars, FrontendError> {
        let mut vars = Vars::default();
        for (k, v) in platform_args(&opts.platform, opts.build_platform()) {
            vars.set(&k, &v);
        }
        for ins in &self.meta_args {
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

    /// The index of the stage a `--from` name refers to among the stages
    /// before `before`: by name, or by number.
    fn index_of(&self, name: &str, before: usize) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(i) = self.stages[..before]
            .iter()
            .position(|s| s.name() == Some(lower.as_str()))
        {
            return Some(i);
        }
        name.parse::<usize>().ok().filter(|i| *i < before)
    }

    /// The stage `--target` names, or the last.
    pub fn target(&self, df: &Dockerfile, opts: &BuildOptions) -> Result<usize, FrontendError> {
        match &opts.target {
            None => Ok(self.stages.len() - 1),
            Some(t) => self
                .stages
                .iter()
                .position(|s| s.name() == Some(t.to_ascii_lowercase().as_str()))
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

    /// What stage `i` starts from (its FROM expanded with `meta`).
    pub fn base(&self, df: &Dockerfile, i: usize, meta: &Vars) -> Result<Base, FrontendError> {
        let s = &self.stages[i];
        let written = &s.command.base;
        let base = expand_one(df, s.from, written, &|k| meta.get(k))?;
        if base.is_empty() {
            return Err(instruction_error(
                df,
                s.from,
                format!("base name ({}) should not be blank", quote::line(written)),
            ));
        }
        if base.eq_ignore_ascii_case("scratch") {
            return Ok(Base::Scratch);
        }
        if let Some(j) = self.stages[..i]
            .iter()
            .position(|st| st.name() == Some(base.to_ascii_lowercase().as_str()))
        {
            return Ok(Base::Stage(j));
        }
        Ok(Base::Image(base))
    }

    /// What stage `i` starts from through its chain of stages: scratch
    /// or a registry image.
    pub fn root(&self, df: &Dockerfile, i: usize, meta: &Vars) -> Result<Base, FrontendError> {
        match self.base(df, i, meta)? {
            Base::Stage(j) => self.root(df, j, meta),
            other => Ok(other),
        }
    }

    /// The platform stage `i` is for, as BuildKit's dispatcher sets it: a
    /// stage FROM an earlier stage is for that stage's platform; else its
    /// `FROM --platform` (expanded with `meta`, normalised), else the
    /// target platform.
    pub fn platform(
        &self,
        df: &Dockerfile,
        i: usize,
        meta: &Vars,
        opts: &BuildOptions,
    ) -> Result<String, FrontendError> {
        if let Base::Stage(j) = self.base(df, i, meta)? {
            return self.platform(df, j, meta, opts);
        }
        let s = &self.stages[i];
        let Some(written) = &s.command.platform else {
            return Ok(opts.platform.clone());
        };
        let expanded = expand_one(df, s.from, written, &|k| meta.get(k))?;
        rbuild_image::Platform::parse(&expanded)
            .map(|p| p.to_string())
            .map_err(|e| instruction_error(df, s.from, format!("FROM --platform: {e}")))
    }

    /// `--from` of a COPY or RUN mount in stage `stage`: a stage or an image.
    pub fn named(&self, value: &str, stage: usize) -> Base {
        match self.index_of(value, stage) {
            Some(j) => Base::Stage(j),
            None => Base::Image(value.to_string()),
        }
    }

    /// What stage `i` reads: its base, then the `--from` values of its
    /// instructions (COPY and RUN mounts), expanded with the meta args only.
    fn dependencies(
        &self,
        df: &Dockerfile,
        i: usize,
        meta: &Vars,
    ) -> Result<Vec<Base>, FrontendError> {
        let mut out = vec![self.base(df, i, meta)?];
        for ins in &self.stages[i].body {
            let flags = Flags::unchecked(ins);
            let mut values: Vec<String> = Vec::new();
            if matches!(ins.keyword.as_str(), "copy" | "add")
                && let Some(f) = flags.string("from")
            {
                values.push(f.to_string());
            }
            if ins.keyword == "run" {
                values.extend(flags.strings("mount").into_iter().filter_map(from_value));
            }
            for v in values {
                let v = expand_one(df, ins, &v, &|k| meta.get(k))?;
                out.push(self.named(&v, i));
            }
        }
        Ok(out)
    }

    /// The stages `target` needs (itself included), in file order.
    pub fn needed(
        &self,
        df: &Dockerfile,
        target: usize,
        meta: &Vars,
    ) -> Result<Vec<usize>, FrontendError> {
        let mut need = BTreeSet::new();
        let mut stack = vec![target];
        while let Some(i) = stack.pop() {
            if need.insert(i) {
                for d in self.dependencies(df, i, meta)? {
                    if let Base::Stage(j) = d {
                        stack.push(j);
                    }
                }
            }
        }
        Ok(need.into_iter().collect())
    }
}

/// The registry images (ARGs expanded) that the stages the target needs
/// start FROM (each for its stage's platform) or read with `--from` (for
/// the target platform), in first-use order.
pub(crate) fn base_images(
    df: &Dockerfile,
    opts: &BuildOptions,
) -> Result<Vec<BaseImage>, FrontendError> {
    let stages = Stages::split(df)?;
    let mut used = BTreeSet::new();
    let meta = stages.meta_vars(df, opts, &mut used)?;
    let target = stages.target(df, opts)?;
    let mut out = Vec::new();
    for i in stages.needed(df, target, &meta)? {
        let stage_platform = stages.platform(df, i, &meta, opts)?;
        // The base first: for the stage's platform; a `--from` image for
        // the target's (see `Lowerer::named_source`).
        for (k, d) in stages.dependencies(df, i, &meta)?.into_iter().enumerate() {
            if let Base::Image(name) = d {
                let platform = match k {
                    0 => stage_platform.clone(),
                    _ => opts.platform.clone(),
                };
                let wanted = BaseImage { name, platform };
                if !out.contains(&wanted) {
                    out.push(wanted);
                }
            }
        }
    }
    Ok(out)
}
