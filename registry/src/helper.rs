//! The docker credential helper protocol: `docker-credential-<name> get |
//! store | erase`, one request on stdin, an answer on stdout (see
//! docker/docker-credential-helpers). `credHelpers` (per registry) and
//! `credsStore` (all registries) in the docker config name the helper.

use std::io::Write;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::{Credentials, RegistryError};

/// One credential helper program, `docker-credential-<name>` on `$PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    name: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    #[serde(
        rename = "ServerURL",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    server_url: String,
    username: String,
    secret: String,
}

impl Helper {
    /// The helper `docker-credential-<name>`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
        }
    }

    fn program(&self) -> String {
        format!("docker-credential-{}", self.name)
    }

    /// Runs `action` with `input` on stdin; its stdout on success.
    fn call(&self, action: &str, input: &[u8]) -> Result<Vec<u8>, RegistryError> {
        let program = self.program();
        let failed =
            |message: String| RegistryError::Other(format!("{program} {action}: {message}"));
        let mut child = Command::new(&program)
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(e.to_string()))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // A helper that exits without reading its input is judged by its status.
        let _ = stdin.write_all(input);
        drop(stdin);
        let out = child
            .wait_with_output()
            .map_err(|e| failed(e.to_string()))?;
        if !out.status.success() {
            // Helpers print their error on stdout (the protocol), some on stderr.
            let message = String::from_utf8_lossy(if out.stdout.is_empty() {
                &out.stderr
            } else {
                &out.stdout
            })
            .trim()
            .to_string();
            return Err(failed(format!("{} ({message})", out.status)));
        }
        Ok(out.stdout)
    }

    /// The credentials the helper holds for `server`; `None` when it has none
    /// (or cannot be run: a lookup falls back to anonymous access).
    pub fn get(&self, server: &str) -> Option<Credentials> {
        let out = self.call("get", server.as_bytes()).ok()?;
        let entry: Entry = serde_json::from_slice(&out).ok()?;
        Some(Credentials {
            username: entry.username,
            password: entry.secret,
        })
    }

    /// Stores `creds` for `server` in the helper.
    pub fn store(&self, server: &str, creds: &Credentials) -> Result<(), RegistryError> {
        let entry = Entry {
            server_url: server.to_string(),
            username: creds.username.clone(),
            secret: creds.password.clone(),
        };
        let input = serde_json::to_vec(&entry).expect("an entry serializes");
        self.call("store", &input).map(drop)
    }

    /// Erases what the helper holds for `server`.
    pub fn erase(&self, server: &str) -> Result<(), RegistryError> {
        self.call("erase", server.as_bytes()).map(drop)
    }
}
