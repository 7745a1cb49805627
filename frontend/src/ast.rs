//! The parsed Dockerfile: a flat list of instructions with their flags and
//! argument strings, as BuildKit's first stage produces them (no
//! expansion, quotes kept in shell form).

use crate::lines::{Heredoc, RawInstruction};
use crate::quote;
use crate::word::{self, is_blank, words};

/// One instruction.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// Keyword, lower-cased.
    pub keyword: String,
    /// Leading `--flags`, quotes removed, with their `--`.
    pub flags: Vec<String>,
    /// Argument strings (see the conformance README, 1.4).
    pub args: Vec<String>,
    /// The arguments were a JSON array (exec form).
    pub json: bool,
    /// For ONBUILD: the wrapped instruction.
    pub inner: Option<Box<Instruction>>,
    /// The original text (after continuation joining).
    pub original: String,
    /// Heredoc bodies.
    pub heredocs: Vec<Heredoc>,
    /// 1-based first line.
    pub line: usize,
    /// 1-based column of the keyword.
    pub column: usize,
    /// 1-based last line (continuations and heredoc bodies included).
    pub end_line: usize,
}

/// Splitting failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitError(pub String);

/// The JSON form of `args`, if it is one; `Err` for a JSON array with
/// non-string elements.
fn json_form(args: &str) -> Result<Option<Vec<String>>, SplitError> {
    let t = args.trim_start_matches(is_blank);
    if !t.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(t) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(SplitError(String::from(
                "when using JSON array syntax, arrays must be comprised of strings only",
            ))),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn split_ws(args: &str) -> Vec<String> {
    args.split(is_blank)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// ENV/LABEL key-value triples.
fn key_values(keyword: &str, args: &str, escape: char) -> Result<Vec<String>, SplitError> {
    if args.is_empty() {
        return Ok(Vec::new());
    }
    let ws = words(args, escape);
    if ws.first().is_some_and(|w| !w.contains('=')) {
        let Some(at) = args.find(is_blank) else {
            return Err(SplitError(format!(
                "{} must have two arguments",
                keyword.to_ascii_uppercase()
            )));
        };
        let key = &args[..at];
        let value = args[at..].trim_start_matches(is_blank);
        if value.is_empty() {
            return Err(SplitError(format!(
                "{} must have two arguments",
                keyword.to_ascii_uppercase()
            )));
        }
        return Ok(vec![key.to_string(), value.to_string(), String::new()]);
    }
    let mut out = Vec::new();
    for w in ws {
        let Some((k, v)) = w.split_once('=') else {
            return Err(SplitError(format!(
                "{}: syntax error - can't find = in {}. Must be of the form: name=value",
                keyword.to_ascii_uppercase(),
                quote::excerpt(w)
            )));
        };
        out.extend([k.to_string(), v.to_string(), String::from("=")]);
    }
    Ok(out)
}

/// Splits an assembled instruction text into keyword, flags and arguments.
// Over 80 lines: the table of how each keyword's arguments split (BuildKit's
// dispatch table in parser.go), one arm per argument form.
pub fn split_text(text: &str, escape: char) -> Result<Instruction, SplitError> {
    let text = text.trim_matches(is_blank);
    let (keyword, after) = text.split_at(text.find(is_blank).unwrap_or(text.len()));
    if keyword.is_empty() {
        return Err(SplitError(format!(
            "cannot parse instruction {}",
            quote::excerpt(text)
        )));
    }
    let keyword = keyword.to_ascii_lowercase();
    let (flags, rest) = word::flags(after, escape);
    let args = rest.trim_matches(is_blank);
    let mut json = false;
    let mut inner = None;
    let list = match keyword.as_str() {
        "from" | "expose" => split_ws(args),
        "add" | "copy" | "volume" => match json_form(args)? {
            Some(v) => {
                json = true;
                v
            }
            None => split_ws(args),
        },
        "run" | "cmd" | "entrypoint" | "shell" => match json_form(args)? {
            Some(v) => {
                json = true;
                v
            }
            None if args.is_empty() => Vec::new(),
            None => vec![args.to_string()],
        },
        "maintainer" | "user" | "workdir" | "stopsignal" => {
            if args.is_empty() {
                Vec::new()
            } else {
                vec![args.to_string()]
            }
        }
        "arg" => words(args, escape)
            .into_iter()
            .map(str::to_string)
            .collect(),
        "env" | "label" => key_values(&keyword, args, escape)?,
        "healthcheck" => {
            if args.is_empty() {
                Vec::new()
            } else {
                let at = args.find(is_blank).unwrap_or(args.len());
                let kind = &args[..at];
                let more = args[at..].trim_matches(is_blank);
                let mut v = vec![kind.to_string()];
                match json_form(more)? {
                    Some(j) => {
                        json = true;
                        v.extend(j);
                    }
                    None if more.is_empty() => {}
                    None => v.push(more.to_string()),
                }
                v
            }
        }
        "onbuild" => {
            if !args.is_empty() {
                inner = Some(Box::new(split_text(args, escape)?));
            }
            Vec::new()
        }
        _ => vec![String::new()],
    };
    Ok(Instruction {
        keyword,
        flags,
        args: list,
        json,
        inner,
        original: text.to_string(),
        heredocs: Vec::new(),
        line: 0,
        column: 0,
        end_line: 0,
    })
}

/// Splits a read instruction, keeping its position and heredocs.
pub fn split(raw: RawInstruction, escape: char) -> Result<Instruction, SplitError> {
    let mut ins = split_text(&raw.text, escape)?;
    ins.heredocs = raw.heredocs;
    ins.line = raw.line;
    ins.column = raw.column;
    ins.end_line = raw.end_line;
    Ok(ins)
}
