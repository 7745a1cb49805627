//! The leading `--name[=value]` flags of an instruction, checked against
//! the names the instruction takes and read as strings, lists or booleans
//! (BuildKit's `BFlags`).

use crate::ast::Instruction;

/// The flags of one instruction.
#[derive(Debug, Clone)]
pub struct Flags<'a> {
    /// `(name, value)` in order; a bare `--name` has no value.
    values: Vec<(&'a str, Option<&'a str>)>,
}

impl<'a> Flags<'a> {
    /// The flags of `ins`, without checking their names (stage analysis
    /// reads `--from` of instructions it does not lower).
    pub fn unchecked(ins: &'a Instruction) -> Self {
        let values = ins
            .flags
            .iter()
            .map(|f| {
                let f = f.strip_prefix("--").unwrap_or(f);
                match f.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (f, None),
                }
            })
            .collect();
        Self { values }
    }

    /// The flags of `ins`; a name not in `allowed` is an error.
    pub fn parse(ins: &'a Instruction, allowed: &[&str]) -> Result<Self, String> {
        let flags = Self::unchecked(ins);
        if let Some((name, _)) = flags.values.iter().find(|(n, _)| !allowed.contains(n)) {
            return Err(format!(
                "unknown flag: --{name} for {}",
                ins.keyword.to_ascii_uppercase()
            ));
        }
        Ok(flags)
    }

    /// The last value of `name` (`true` for a bare `--name`).
    pub fn string(&self, name: &str) -> Option<&'a str> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.unwrap_or("true"))
    }

    /// Every `--name=value`, in order (`--mount`, `--exclude`).
    pub fn strings(&self, name: &str) -> Vec<&'a str> {
        self.values
            .iter()
            .filter(|(n, _)| *n == name)
            .filter_map(|(_, v)| *v)
            .collect()
    }

    /// A boolean flag: absent is `None`, bare or `=true` is true,
    /// `=false` false (either case), anything else an error.
    pub fn optional_bool(&self, name: &str) -> Result<Option<bool>, String> {
        match self.string(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(format!("expecting boolean value for flag {name}, not: {v}")),
        }
    }

    /// A boolean flag that is false when absent.
    pub fn bool(&self, name: &str) -> Result<bool, String> {
        Ok(self.optional_bool(name)?.unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instruction(flags: &[&str]) -> Instruction {
        let text = format!("COPY {} a b", flags.join(" "));
        crate::ast::split_text(&text, '\\').expect("an instruction")
    }

    #[test]
    fn names_are_checked_and_values_read() {
        let ins = instruction(&[
            "--from=a",
            "--exclude=x",
            "--exclude=y",
            "--link",
            "--from=b",
        ]);
        let flags = Flags::parse(&ins, &["from", "exclude", "link"]).unwrap();
        assert_eq!(flags.string("from"), Some("b"));
        assert_eq!(flags.strings("exclude"), ["x", "y"]);
        assert_eq!(flags.bool("link"), Ok(true));
        assert_eq!(flags.optional_bool("parents"), Ok(None));
        let e = Flags::parse(&ins, &["from", "exclude"]).unwrap_err();
        assert_eq!(e, "unknown flag: --link for COPY");
    }

    #[test]
    fn booleans_are_true_or_false_only() {
        let flags = |f: &str| Flags::unchecked(&instruction(&[f])).optional_bool("link");
        assert_eq!(flags("--link=FALSE"), Ok(Some(false)));
        assert_eq!(flags("--link=True"), Ok(Some(true)));
        assert_eq!(
            flags("--link=yes"),
            Err(String::from(
                "expecting boolean value for flag link, not: yes"
            ))
        );
    }
}
