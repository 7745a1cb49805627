//! Reading the file into instructions, as BuildKit's first stage does:
//! BOM, parser directives at the top, comments, blank lines, line
//! continuations with the escape character, and heredoc bodies.

use pest::Parser;
use rbuild_grammar::{DockerfileParser, Rule};

use crate::word::is_blank;

/// Parser directives found at the top of the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=`.
    pub syntax: Option<String>,
    /// `# escape=` (default `\`).
    pub escape: char,
    /// `# check=`.
    pub check: Option<String>,
}

/// A heredoc body of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word (quotes removed).
    pub name: String,
    /// The body, each line with its newline.
    pub content: String,
    /// Whether the body is expanded (the word was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs were stripped.
    pub strip_tabs: bool,
    /// The file descriptor number before `<<`, if any.
    pub fd: Option<u32>,
}

/// One instruction's text before splitting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawInstruction {
    /// The assembled logical line (continuations joined).
    pub text: String,
    /// 1-based first line.
    pub line: usize,
    /// 1-based column of the keyword.
    pub column: usize,
    /// 1-based last line consumed (continuations, heredoc bodies).
    pub end_line: usize,
    /// Heredoc bodies, in marker order.
    pub heredocs: Vec<Heredoc>,
}

/// A reading error: line and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> LineError {
    LineError {
        line,
        message: message.into(),
    }
}

/// Longest line BuildKit accepts; rbuild applies it to the logical line
/// (continuations joined) too, so that joining cannot build an unbounded one.
pub const MAX_LINE: usize = 65_535;

/// Splits the file into lines without their endings.
fn physical_lines(source: &str) -> Vec<&str> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    if source.is_empty() {
        return Vec::new();
    }
    let mut lines: Vec<&str> = source.split('\n').collect();
    if source.ends_with('\n') {
        lines.pop();
    }
    lines
        .into_iter()
        .map(|l| l.trim_end_matches(['\r', '\n']))
        .collect()
}

/// Reads the directives at the top; returns them and the index of the
/// first line after them.
fn directives(lines: &[&str]) -> Result<(Directives, usize), LineError> {
    let mut d = Directives {
        escape: '\\',
        ..Default::default()
    };
    let mut seen: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Ok(mut pairs) = DockerfileParser::parse(Rule::directive, line) else {
            return Ok((d, i));
        };
        let pair = pairs.next().expect("a directive");
        let mut inner = pair.into_inner();
        let key = inner.next().expect("a key").as_str().to_ascii_lowercase();
        let value = inner
            .next()
            .expect("a value")
            .as_str()
            .trim_end()
            .to_string();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            return Ok((d, i));
        }
        if seen.contains(&key) {
            return Err(err(
                i + 1,
                format!("only one {key} parser directive can be used"),
            ));
        }
        seen.push(key.clone());
        match key.as_str() {
            "syntax" => d.syntax = Some(value),
            "check" => d.check = Some(value),
            _ => {
                d.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        return Err(err(
                            i + 1,
                            format!("invalid escape token '{other}' does not match ` or \\"),
                        ));
                    }
                }
            }
        }
    }
    Ok((d, lines.len()))
}

fn is_comment(line: &str) -> bool {
    line.trim_start_matches(is_blank).starts_with('#')
}

/// If `line` continues onto the next one, the text before the escape.
fn continues(line: &str, escape: char) -> Option<&str> {
    let trimmed = line.trim_end_matches([' ', '\t']);
    let before = trimmed.strip_suffix(escape)?;
    if before.ends_with(escape) {
        return None;
    }
    Some(before)
}

/// Reads the whole file.
// Over 80 lines: one pass over the physical lines carrying the state of
// the logical line being joined (continuations, comments inside it,
// heredoc bodies still open), as BuildKit's scanner loop in parser.go.
pub fn read(source: &str) -> Result<(Directives, Vec<RawInstruction>), LineError> {
    let lines = physical_lines(source);
    if let Some(i) = lines.iter().position(|l| l.len() > MAX_LINE) {
        return Err(err(
            i + 1,
            format!("dockerfile line greater than max allowed size of {MAX_LINE}"),
        ));
    }
    let (directives, mut i) = directives(&lines)?;
    let escape = directives.escape;
    let mut out = Vec::new();
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start_matches(is_blank);
        if trimmed.is_empty() || is_comment(line) {
            i += 1;
            continue;
        }
        let start = i;
        let column = line.len() - trimmed.len() + 1;
        let mut text = String::new();
        let mut current = trimmed;
        loop {
            match continues(current, escape) {
                Some(before) => {
                    text.push_str(before);
                    i += 1;
                    // Skip comments and blank lines inside the continuation.
                    while i < lines.len()
                        && (is_comment(lines[i]) || lines[i].trim_matches(is_blank).is_empty())
                    {
                        i += 1;
                    }
                    if i >= lines.len() {
                        break;
                    }
                    current = lines[i];
                }
                None => {
                    text.push_str(current);
                    break;
                }
            }
        }
        if text.len() > MAX_LINE {
            return Err(err(
                start + 1,
                format!(
                    "instruction (continuation lines joined) greater than max allowed size of {MAX_LINE}"
                ),
            ));
        }
        let end = i.min(lines.len() - 1);
        i = end + 1;
        let mut raw = RawInstruction {
            text,
            line: start + 1,
            column,
            end_line: end + 1,
            heredocs: Vec::new(),
        };
        let markers = heredoc_markers(&raw.text, escape);
        for (name, strip_tabs, expand, fd) in markers {
            let mut content = String::new();
            let mut found = false;
            while i < lines.len() {
                let body = lines[i];
                i += 1;
                let cmp = if strip_tabs {
                    body.trim_start_matches('\t')
                } else {
                    body
                };
                if cmp == name {
                    found = true;
                    break;
                }
                content.push_str(cmp);
                content.push('\n');
            }
            if !found {
                return Err(err(raw.line, format!("unterminated heredoc {name}")));
            }
            raw.end_line = i;
            raw.heredocs.push(Heredoc {
                name,
                content,
                expand,
                strip_tabs,
                fd,
            });
        }
        out.push(raw);
    }
    Ok((directives, out))
}

/// The heredoc markers of an instruction that takes them (RUN, COPY, ADD,
/// also under ONBUILD), in order: (word, strip tabs, expand, fd).
fn heredoc_markers(text: &str, escape: char) -> Vec<(String, bool, bool, Option<u32>)> {
    let mut words = text.split_whitespace();
    let mut keyword = words.next().unwrap_or("").to_ascii_lowercase();
    if keyword == "onbuild" {
        keyword = words.next().unwrap_or("").to_ascii_lowercase();
    }
    if !matches!(keyword.as_str(), "run" | "copy" | "add") || !text.contains("<<") {
        return Vec::new();
    }
    let rest: Vec<&str> = words.collect();
    if rest
        .iter()
        .find(|w| !w.starts_with("--"))
        .is_some_and(|w| w.starts_with('['))
    {
        // JSON form has no heredocs.
        let joined = rest
            .iter()
            .skip_while(|w| w.starts_with("--"))
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        if serde_json::from_str::<Vec<serde_json::Value>>(&joined).is_ok() {
            return Vec::new();
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    let bytes = text.as_bytes();
    while let Some(at) = text[i..].find("<<") {
        let pos = i + at;
        // Include a leading fd number.
        let mut start = pos;
        while start > 0 && bytes[start - 1].is_ascii_digit() {
            start -= 1;
        }
        let preceded_ok = start == 0 || is_blank(text[..start].chars().last().unwrap_or(' '));
        if preceded_ok && !(pos > 0 && text[..pos].ends_with(escape)) {
            let candidate: String = text[start..]
                .chars()
                .take_while(|c| !is_blank(*c))
                .collect();
            if let Ok(mut pairs) = DockerfileParser::parse(Rule::heredoc_marker, &candidate) {
                let marker = pairs.next().expect("a marker");
                let mut fd = None;
                let mut strip = false;
                let mut word = String::new();
                let mut quoted = false;
                for p in marker.into_inner() {
                    match p.as_rule() {
                        Rule::heredoc_fd if !p.as_str().is_empty() => fd = p.as_str().parse().ok(),
                        Rule::heredoc_strip => strip = true,
                        Rule::heredoc_word => {
                            for part in p.into_inner() {
                                match part.as_rule() {
                                    Rule::heredoc_quoted => {
                                        quoted = true;
                                        let s = part.as_str();
                                        word.push_str(&s[1..s.len() - 1]);
                                    }
                                    _ => word.push_str(part.as_str()),
                                }
                            }
                        }
                        _ => {}
                    }
                }
                if !word.is_empty() {
                    out.push((word, strip, !quoted, fd));
                }
            }
        }
        i = pos + 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_comments_and_heredocs() {
        let src = "# escape=`\nFROM a\nRUN echo `\n  # c\n\n  b\nRUN <<EOF cat\nx\nEOF\nCOPY <<-'A' /f\n\tbody $X\n\tA\n";
        let (d, ins) = read(src).unwrap();
        assert_eq!(d.escape, '`');
        assert_eq!(ins[1].text, "RUN echo   b");
        assert_eq!((ins[1].line, ins[1].end_line), (3, 6));
        assert_eq!(ins[2].heredocs[0].content, "x\n");
        assert_eq!(ins[2].end_line, 9);
        let h = &ins[3].heredocs[0];
        assert_eq!(
            (h.name.as_str(), h.content.as_str(), h.expand, h.strip_tabs),
            ("A", "body $X\n", false, true)
        );
        assert!(read("RUN <<EOF\nno end\n").is_err());
        assert!(read("# escape=x\nFROM a").is_err());
        assert!(read("# escape=`\n# escape=\\\nFROM a").is_err());
    }
}
