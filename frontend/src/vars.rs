//! Build variables: an ordered name → value set (ARGs, ENV), the
//! platform args every build defines, and the expansion of one word of an
//! instruction with them, counted against the build's expansion budget.

use std::collections::HashMap;

use crate::ast::Instruction;
use crate::graph::Env;
use crate::{Dockerfile, FrontendError, expand};

/// Variables with constant-time lookups, and in declaration order as an
/// exec's environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vars {
    values: HashMap<String, String>,
    /// The same variables as an exec's environment, shared.
    env: Env,
}

impl Vars {
    /// The value of `k`, if set.
    pub(crate) fn get(&self, k: &str) -> Option<String> {
        self.values.get(k).cloned()
    }

    /// Sets `k`, keeping its first position in the environment.
    pub(crate) fn set(&mut self, k: &str, v: &str) {
        self.env = self.env.with(k, v);
        match self.values.get_mut(k) {
            Some(value) => v.clone_into(value),
            None => {
                self.values.insert(k.to_string(), v.to_string());
            }
        }
    }

    /// The variables of an image's `KEY=value` environment.
    pub(crate) fn from_env(env: &[String]) -> Self {
        let mut v = Self::default();
        for e in env {
            let (k, val) = e.split_once('=').unwrap_or((e.as_str(), ""));
            v.set(k, val);
        }
        v
    }

    /// The variables as an exec's environment (`KEY=value` in declaration
    /// order), sharing what earlier environments hold: constant time.
    pub(crate) fn env(&self) -> Env {
        self.env.clone()
    }
}

/// The automatic platform args, as BuildKit's `getPlatformArgs` sets
/// them: `TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`, `TARGETVARIANT` of
/// `target` and `BUILDPLATFORM`, … of `build` (both `os/arch[/variant]`;
/// the variant empty when there is none).
pub(crate) fn platform_args(target: &str, build: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (prefix, platform) in [("TARGET", target), ("BUILD", build)] {
        let mut parts = platform.split('/');
        let os = parts.next().unwrap_or_default();
        let arch = parts.next().unwrap_or_default();
        let variant = parts.next().unwrap_or_default();
        out.push((format!("{prefix}PLATFORM"), platform.to_string()));
        out.push((format!("{prefix}OS"), os.to_string()));
        out.push((format!("{prefix}ARCH"), arch.to_string()));
        out.push((format!("{prefix}VARIANT"), variant.to_string()));
    }
    out
}

/// Expands one word of `ins` with `lookup`; errors name the instruction.
pub(crate) fn expand_one(
    df: &Dockerfile,
    ins: &Instruction,
    word: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, FrontendError> {
    let out = expand::expand_word(word, df.directives.escape, lookup)
        .and_then(|out| df.expanded.spend(out.len()).map(|()| out));
    out.map_err(|e| instruction_error(df, ins, e))
}

/// An error at the position of `ins`.
pub(crate) fn instruction_error(
    df: &Dockerfile,
    ins: &Instruction,
    message: impl Into<String>,
) -> FrontendError {
    FrontendError::at(&df.file, ins.line, ins.column, message)
}
