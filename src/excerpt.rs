//! The Dockerfile excerpt under a failed step's error, as BuildKit prints
//! it: the file and line, then the instruction's lines marked `>>>` with
//! two lines around them, each cut to a readable length, and a caret
//! under its first character, as rbuild's parse errors show one.

use rbuild_frontend::graph::Location;
use rbuild_frontend::quote;

/// Lines shown before and after the instruction.
const CONTEXT_LINES: usize = 2;

/// The excerpt of `source` (the Dockerfile named `name`) at `location`;
/// `None` if the lines are not in it.
pub fn render(name: &str, source: &str, location: &Location) -> Option<String> {
    let lines: Vec<&str> = source.lines().collect();
    let (first, last) = (location.line, location.end_line.max(location.line));
    if first == 0 || last > lines.len() {
        return None;
    }
    let from = first.saturating_sub(CONTEXT_LINES).max(1);
    let to = (last + CONTEXT_LINES).min(lines.len());
    let width = to.to_string().len().max(4);
    let rule = "-".repeat(20);
    let mut out = format!("{name}:{first}\n{rule}\n");
    for n in from..=to {
        let mark = if (first..=last).contains(&n) {
            ">>>"
        } else {
            "   "
        };
        let text = quote::line(lines[n - 1]);
        out.push_str(&format!("{n:>width$} | {mark} {text}\n"));
        if n == first {
            // A caret at the instruction's column, as parse errors show.
            let pad = " ".repeat(width);
            let at = " ".repeat(location.column.saturating_sub(1));
            out.push_str(&format!("{pad} |     {at}^\n"));
        }
    }
    out.push_str(&rule);
    out.push('\n');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instruction_is_marked_with_its_neighbours() {
        let source =
            "FROM bb\nRUN echo ok\nRUN echo fail && \\\n    false\nCMD x\nENV A=1\nENV B=2\n";
        let location = Location {
            line: 3,
            column: 1,
            end_line: 4,
        };
        let shown = render("Dockerfile", source, &location).unwrap();
        assert_eq!(
            shown,
            "Dockerfile:3\n--------------------\n   1 |     FROM bb\n   2 |     RUN echo ok\n   3 | >>> RUN echo fail && \\\n     |     ^\n   4 | >>>     false\n   5 |     CMD x\n   6 |     ENV A=1\n--------------------\n"
        );
        let beyond = Location {
            line: 9,
            column: 1,
            end_line: 9,
        };
        assert!(render("Dockerfile", source, &beyond).is_none());
    }
}
