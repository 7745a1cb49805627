//! Typed instructions (BuildKit's `instructions/` package): each
//! [`ast::Instruction`](crate::ast::Instruction) becomes a [`Command`]
//! with its flags checked against the ones it takes and parsed into typed
//! values (enums for network, security, mount type and sharing; booleans,
//! durations, modes). Words are not expanded here: that needs the
//! environment of the moment, which only lowering knows.

pub mod expose;
pub mod flags;
mod healthcheck;
pub mod mount;
pub mod signal;

use crate::ast::Instruction;
use crate::graph::{NetworkMode, Security};
use crate::lines::Heredoc;
use crate::quote;
use flags::Flags;

pub use healthcheck::HealthcheckCommand;

/// One instruction of a stage's body (FROM is read by stage analysis).
#[derive(Debug, Clone)]
pub enum Command {
    /// `ARG name[=default] …`.
    Arg(Vec<(String, Option<String>)>),
    /// `ENV key=value …` (unexpanded pairs).
    Env(Vec<(String, String)>),
    /// `LABEL key=value …` (unexpanded pairs).
    Label(Vec<(String, String)>),
    /// `MAINTAINER name`.
    Maintainer(String),
    /// `USER user[:group]`.
    User(String),
    /// `WORKDIR path`.
    Workdir(String),
    /// `STOPSIGNAL signal`.
    StopSignal(String),
    /// `EXPOSE port…` (unexpanded specs).
    Expose(Vec<String>),
    /// `VOLUME path…`.
    Volume(Vec<String>),
    /// `SHELL ["exe", "arg"…]`.
    Shell(Vec<String>),
    /// `CMD`.
    Cmd(CommandLine),
    /// `ENTRYPOINT`.
    Entrypoint(CommandLine),
    /// `HEALTHCHECK`.
    Healthcheck(HealthcheckCommand),
    /// `ONBUILD instruction`: the trigger's text.
    OnBuild(String),
    /// `RUN`.
    Run(RunCommand),
    /// `COPY` or `ADD`.
    Copy(CopyCommand),
}

/// `FROM [--platform=…] base [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromCommand {
    /// The base as written (expanded with the global ARGs later).
    pub base: String,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// `--platform`, as written.
    pub platform: Option<String>,
}

impl FromCommand {
    /// Types a FROM instruction.
    pub fn parse(ins: &Instruction) -> Result<Self, String> {
        let flags = Flags::parse(ins, &["platform"])?;
        let (base, name) = match ins.args.as_slice() {
            [b] => (b.clone(), None),
            [b, as_, n] if as_.eq_ignore_ascii_case("as") => {
                (b.clone(), Some(n.to_ascii_lowercase()))
            }
            _ => {
                return Err(String::from(
                    "FROM requires either one or three arguments: FROM <image> [AS <name>]",
                ));
            }
        };
        if let Some(n) = &name
            && !n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        {
            return Err(format!(
                "invalid name for build stage: {}, name can't start with a number or contain symbols",
                quote::excerpt(n)
            ));
        }
        Ok(Self {
            base,
            name,
            platform: flags.string("platform").map(str::to_string),
        })
    }
}

/// The command of CMD, ENTRYPOINT or RUN as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// argv (exec form) or the one shell-form string.
    pub args: Vec<String>,
    /// Exec (JSON) form.
    pub json: bool,
}

/// `RUN`.
#[derive(Debug, Clone)]
pub struct RunCommand {
    /// The command.
    pub command: CommandLine,
    /// Heredoc bodies of the instruction.
    pub heredocs: Vec<Heredoc>,
    /// `--mount` values, parsed once expanded ([`mount::Mount::parse`]).
    pub mounts: Vec<String>,
    /// `--network`.
    pub network: NetworkMode,
    /// `--security`.
    pub security: Security,
}

/// `COPY` and `ADD` (which adds remote sources, archives and their flags).
#[derive(Debug, Clone)]
pub struct CopyCommand {
    /// ADD rather than COPY.
    pub add: bool,
    /// Sources as written (paths, wildcards, URLs, `<<heredoc` markers).
    pub sources: Vec<String>,
    /// Destination as written.
    pub dest: String,
    /// `--from` (COPY).
    pub from: Option<String>,
    /// `--chown`, unexpanded.
    pub chown: Option<String>,
    /// `--chmod`, unexpanded (current BuildKit expands it, then parses it).
    pub chmod: Option<String>,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--parents` (COPY).
    pub parents: bool,
    /// `--link`.
    pub link: bool,
    /// `--checksum` (ADD of a URL or git repository).
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD of a git repository).
    pub keep_git_dir: bool,
    /// `--unpack` (ADD): `None` means the default for the source.
    pub unpack: Option<bool>,
}

impl Command {
    /// Types `ins`; the error is the message for its position.
    // Over 80 lines: the table of keywords, one short arm per instruction
    // (RUN, COPY/ADD and HEALTHCHECK have their own parsers); split, the
    // table would no longer read as one.
    pub fn parse(ins: &Instruction) -> Result<Self, String> {
        let keyword = ins.keyword.as_str();
        // BuildKit lets the flags of ARG and STOPSIGNAL pass unchecked.
        let no_flags = || Flags::parse(ins, &[]).map(|_| ());
        Ok(match keyword {
            "arg" => Command::Arg(
                ins.args
                    .iter()
                    .map(|w| match w.split_once('=') {
                        Some((n, d)) => (n.to_string(), Some(d.to_string())),
                        None => (w.clone(), None),
                    })
                    .collect(),
            ),
            "env" => {
                no_flags()?;
                if ins.args.is_empty() {
                    return Err(String::from("ENV requires at least one argument"));
                }
                Command::Env(pairs(&ins.args))
            }
            "label" => {
                no_flags()?;
                Command::Label(pairs(&ins.args))
            }
            "maintainer" => {
                no_flags()?;
                Command::Maintainer(ins.args.first().cloned().unwrap_or_default())
            }
            "user" => {
                no_flags()?;
                Command::User(one_arg(ins)?)
            }
            "workdir" => {
                no_flags()?;
                Command::Workdir(one_arg(ins)?)
            }
            "stopsignal" => Command::StopSignal(one_arg(ins)?),
            "expose" => {
                no_flags()?;
                Command::Expose(ins.args.clone())
            }
            "volume" => {
                no_flags()?;
                Command::Volume(ins.args.clone())
            }
            "shell" => {
                no_flags()?;
                if !ins.json || ins.args.is_empty() {
                    return Err(String::from(
                        "SHELL requires the arguments to be in JSON form",
                    ));
                }
                Command::Shell(ins.args.clone())
            }
            "cmd" | "entrypoint" => {
                no_flags()?;
                let line = CommandLine {
                    args: ins.args.clone(),
                    json: ins.json,
                };
                if keyword == "cmd" {
                    Command::Cmd(line)
                } else {
                    Command::Entrypoint(line)
                }
            }
            "healthcheck" => Command::Healthcheck(HealthcheckCommand::parse(ins)?),
            "onbuild" => {
                no_flags()?;
                let inner = ins
                    .inner
                    .as_ref()
                    .ok_or_else(|| String::from("ONBUILD requires an instruction"))?;
                if matches!(inner.keyword.as_str(), "onbuild" | "from" | "maintainer") {
                    return Err(format!(
                        "{} isn't allowed as an ONBUILD trigger",
                        inner.keyword.to_ascii_uppercase()
                    ));
                }
                Command::OnBuild(inner.original.clone())
            }
            "run" => Command::Run(RunCommand::parse(ins)?),
            "copy" | "add" => Command::Copy(CopyCommand::parse(ins)?),
            other => {
                let hint = nearest_instruction(other)
                    .map(|name| format!(" (did you mean {name}?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "unknown instruction: {}{hint}",
                    quote::line(&other.to_ascii_uppercase())
                ));
            }
        })
    }
}

/// Every instruction keyword, lower case, in BuildKit's `command` order.
const INSTRUCTIONS: [&str; 18] = [
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// The instruction an unknown (lower-cased) keyword most likely meant, as
/// BuildKit suggests one: the first at the smallest Levenshtein distance,
/// which must be under 3; named in lower case as BuildKit does.
fn nearest_instruction(keyword: &str) -> Option<&'static str> {
    let mut best = None;
    let mut best_distance = 3;
    for name in INSTRUCTIONS {
        let distance = strsim::levenshtein(keyword, name);
        if distance < best_distance {
            best = Some(name);
            best_distance = distance;
        }
    }
    best
}

/// ENV/LABEL arguments (key, value, separator triples) as pairs.
fn pairs(args: &[String]) -> Vec<(String, String)> {
    args.chunks(3)
        .map(|kv| (kv[0].clone(), kv.get(1).cloned().unwrap_or_default()))
        .collect()
}

/// The single argument of USER, WORKDIR, STOPSIGNAL.
fn one_arg(ins: &Instruction) -> Result<String, String> {
    ins.args.first().cloned().ok_or_else(|| {
        format!(
            "{} requires exactly one argument",
            ins.keyword.to_ascii_uppercase()
        )
    })
}

impl RunCommand {
    fn parse(ins: &Instruction) -> Result<Self, String> {
        let flags = Flags::parse(ins, &["mount", "network", "security"])?;
        let security = match flags.string("security").unwrap_or("sandbox") {
            "sandbox" => Security::Sandbox,
            "insecure" => Security::Insecure,
            other => {
                return Err(format!(
                    "RUN --security={other}: expected sandbox or insecure"
                ));
            }
        };
        let network = match flags.string("network").unwrap_or("default") {
            "default" => NetworkMode::Default,
            "host" => NetworkMode::Host,
            "none" => NetworkMode::None,
            other => {
                return Err(format!(
                    "RUN --network={other}: expected default, none or host"
                ));
            }
        };
        let command = CommandLine {
            args: ins.args.clone(),
            json: ins.json,
        };
        let empty = command.args.first().is_none_or(String::is_empty);
        if !command.json && ins.heredocs.is_empty() && empty {
            return Err(String::from("RUN requires at least one argument"));
        }
        Ok(Self {
            command,
            heredocs: ins.heredocs.clone(),
            mounts: flags
                .strings("mount")
                .into_iter()
                .map(str::to_string)
                .collect(),
            network,
            security,
        })
    }
}

impl CopyCommand {
    fn parse(ins: &Instruction) -> Result<Self, String> {
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
        let flags = Flags::parse(ins, allowed)?;
        let Some((dest, sources)) = ins.args.split_last().filter(|(_, s)| !s.is_empty()) else {
            return Err(format!(
                "{} requires at least two arguments, but only one was provided. Destination could not be determined",
                ins.keyword.to_ascii_uppercase()
            ));
        };
        Ok(Self {
            add,
            sources: sources.to_vec(),
            dest: dest.clone(),
            from: flags.string("from").map(str::to_string),
            chown: flags.string("chown").map(str::to_string),
            chmod: flags.string("chmod").map(str::to_string),
            exclude: flags
                .strings("exclude")
                .into_iter()
                .map(str::to_string)
                .collect(),
            parents: flags.bool("parents")?,
            link: flags.bool("link")?,
            checksum: flags.string("checksum").map(str::to_string),
            keep_git_dir: flags.bool("keep-git-dir")?,
            unpack: flags.optional_bool("unpack")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::nearest_instruction;

    #[test]
    fn a_keyword_within_two_edits_names_the_instruction_it_resembles() {
        assert_eq!(nearest_instruction("coppy"), Some("copy"));
        assert_eq!(nearest_instruction("runn"), Some("run"));
        assert_eq!(nearest_instruction("workdri"), Some("workdir"));
        assert_eq!(nearest_instruction("entrypont"), Some("entrypoint"));
    }

    #[test]
    fn a_keyword_three_edits_from_every_instruction_gets_no_suggestion() {
        assert_eq!(nearest_instruction("frobnicate"), None);
        assert_eq!(nearest_instruction("xyz"), None);
    }

    #[test]
    fn the_nearest_wins_and_a_tie_goes_to_the_first_in_buildkit_order() {
        // One edit from COPY, two from CMD.
        assert_eq!(nearest_instruction("cpy"), Some("copy"));
        // One edit from both ADD and ARG.
        assert_eq!(nearest_instruction("ard"), Some("add"));
    }
}
