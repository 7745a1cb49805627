//! `COPY --chmod`: octal (`755`) or symbolic (`u+x,go-w`, `a=rX`) modes,
//! applied per entry as chmod(1) does.

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// An absolute mode.
    Octal(u32),
    /// Clauses applied in order to each entry's current mode.
    Symbolic(Vec<Clause>),
}

/// One `who op perms` clause of a symbolic mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// Bits of the classes the clause is about (`u`, `g`, `o`; `a` or none = all).
    who: u32,
    /// `+`, `-` or `=`.
    op: char,
    /// Permission letters.
    perms: String,
}

impl Chmod {
    /// Parses a `--chmod` value.
    pub fn parse(s: &str) -> Result<Self, String> {
        let invalid = || format!("invalid --chmod={s}");
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return u32::from_str_radix(s, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .map(Chmod::Octal)
                .ok_or_else(invalid);
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let at = part.find(['+', '-', '=']).ok_or_else(invalid)?;
            let (who, rest) = part.split_at(at);
            let mut who_bits = 0;
            for c in who.chars() {
                who_bits |= match c {
                    'u' => 0o4700,
                    'g' => 0o2070,
                    'o' => 0o1007,
                    'a' => 0o7777,
                    _ => return Err(invalid()),
                };
            }
            let op = rest.chars().next().ok_or_else(invalid)?;
            let perms = &rest[1..];
            if !perms.chars().all(|c| "rwxXst".contains(c)) {
                return Err(invalid());
            }
            clauses.push(Clause {
                who: if who_bits == 0 { 0o7777 } else { who_bits },
                op,
                perms: perms.to_string(),
            });
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The mode an entry with `mode` gets.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let clauses = match self {
            Chmod::Octal(m) => return *m,
            Chmod::Symbolic(c) => c,
        };
        let mut mode = mode & 0o7777;
        for c in clauses {
            let any_exec = mode & 0o111 != 0;
            let mut bits = 0;
            for p in c.perms.chars() {
                bits |= match p {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' if is_dir || any_exec => 0o111,
                    's' => 0o6000,
                    't' => 0o1000,
                    _ => 0,
                };
            }
            let bits = bits & c.who;
            mode = match c.op {
                '+' => mode | bits,
                '-' => mode & !bits,
                _ => (mode & !(c.who & 0o777)) | bits,
            };
        }
        mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_modes_are_absolute() {
        let m = Chmod::parse("0755").unwrap();
        assert_eq!(m.apply(0o600, false), 0o755);
        assert!(Chmod::parse("99999").is_err());
        assert!(Chmod::parse("8").is_err());
    }

    #[test]
    fn symbolic_modes_apply_to_the_current_mode() {
        assert_eq!(Chmod::parse("u+x").unwrap().apply(0o644, false), 0o744);
        assert_eq!(Chmod::parse("go-w").unwrap().apply(0o666, false), 0o644);
        assert_eq!(Chmod::parse("a=r").unwrap().apply(0o777, false), 0o444);
        assert_eq!(
            Chmod::parse("u=rwx,g=rx,o=").unwrap().apply(0, false),
            0o750
        );
        assert_eq!(Chmod::parse("+x").unwrap().apply(0o600, false), 0o711);
    }

    #[test]
    fn capital_x_only_for_directories_and_executables() {
        let m = Chmod::parse("a+X").unwrap();
        assert_eq!(m.apply(0o644, false), 0o644);
        assert_eq!(m.apply(0o644, true), 0o755);
        assert_eq!(m.apply(0o744, false), 0o755);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "u", "z+x", "u+q", "u+x,"] {
            assert!(Chmod::parse(bad).is_err(), "{bad}");
        }
    }
}
