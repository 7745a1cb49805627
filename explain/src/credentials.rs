//! Names that look like credentials, as BuildKit's SecretsUsedInArgOrEnv
//! rule finds them: one of its secret words (`apikey`, `auth`,
//! `credential(s)`, `key`, `password`, `pword`, `passwd`, `secret`,
//! `token`) as a whole `_`-separated part of the name, any case, unless a
//! part is `public` (`PUBLIC_KEY` is fine). Their values never reach a
//! record or a message.

/// BuildKit's secret words.
const SECRET_WORDS: &[&str] = &[
    "apikey",
    "auth",
    "credential",
    "credentials",
    "key",
    "password",
    "pword",
    "passwd",
    "secret",
    "token",
];

/// The prefix of a recorded value that stands for a redacted one.
pub(crate) const REDACTED: &str = "redacted:";

/// Whether a variable named `name` looks like it holds a credential.
pub fn looks_like_credential(name: &str) -> bool {
    let parts = || name.split('_').map(str::to_ascii_lowercase);
    parts().any(|p| SECRET_WORDS.contains(&p.as_str())) && !parts().any(|p| p == "public")
}

/// The value a record keeps of variable `name`: the value itself, or for a
/// credential-looking name `redacted:` and a digest of it, so that a
/// change is still seen but the value is not kept.
pub fn recorded_value(name: &str, value: &str) -> String {
    if !looks_like_credential(name) {
        return value.to_string();
    }
    let mut h = blake3::Hasher::new();
    h.update(b"rbuild redacted variable\0");
    h.update(name.as_bytes());
    h.update(b"\0");
    h.update(value.as_bytes());
    format!("{REDACTED}{}", h.finalize().to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_are_found_as_buildkit_finds_them() {
        for name in [
            "API_KEY",
            "DATABASE_PASSWORD",
            "AUTH_TOKEN",
            "token",
            "GITHUB_Secret",
            "NPM_CREDENTIALS",
            "MY_APIKEY_2",
        ] {
            assert!(looks_like_credential(name), "{name}");
        }
        for name in ["MONKEY", "MYPASSWORDHERE", "PUBLIC_KEY", "VERSION", "KEYS"] {
            assert!(!looks_like_credential(name), "{name}");
        }
    }

    #[test]
    fn a_credential_value_is_recorded_as_a_digest_that_still_changes() {
        assert_eq!(recorded_value("VERSION", "1.2"), "1.2");
        let a = recorded_value("API_TOKEN", "hunter2");
        assert!(a.starts_with(REDACTED) && !a.contains("hunter2"));
        assert_eq!(a, recorded_value("API_TOKEN", "hunter2"));
        assert_ne!(a, recorded_value("API_TOKEN", "hunter3"));
    }
}
