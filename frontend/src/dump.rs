//! BuildKit's AST dump (`rbuild debug parse --dump`): one `(keyword
//! [flags] "args"…)` line per instruction, strings quoted as Go's
//! `strconv.Quote` does.

use crate::ast::Instruction;

/// Whether Go's `strconv.IsPrint` holds for `c`.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32, 0xad | 0x2028 | 0x2029 | 0xfeff | 0xfff9..=0xfffb | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x206f | 0xe000..=0xf8ff | 0xf0000..=0x10ffff)
}

/// Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0B}' => out.push_str("\\v"),
            c if is_print(c) => out.push(c),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// One instruction's node.
fn node(ins: &Instruction) -> String {
    let mut out = ins.keyword.clone();
    if !ins.flags.is_empty() {
        let flags: Vec<String> = ins.flags.iter().map(|f| quote(f)).collect();
        out.push_str(&format!(" [{}]", flags.join(" ")));
    }
    if let Some(inner) = &ins.inner {
        out.push_str(&format!(" ({})", node(inner)));
    }
    for a in &ins.args {
        out.push(' ');
        out.push_str(&quote(a));
    }
    out
}

/// The dump of a whole file.
pub fn dump(instructions: &[Instruction]) -> String {
    instructions
        .iter()
        .map(|i| format!("({})\n", node(i)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote("a\"b\\"), "\"a\\\"b\\\\\"");
        assert_eq!(quote("\u{0}\t♥"), "\"\\x00\\t♥\"");
        assert_eq!(quote("\u{a0}"), "\"\\u00a0\"");
    }
}
