//! Credentials and tokens: `~/.docker/config.json` (`auths` entries and
//! credential helpers), `WWW-Authenticate` challenges, and a token cache
//! per registry and scope.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::RegistryError;

/// A user name and password (or identity token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

/// The docker config file: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
pub fn docker_config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => PathBuf::from(d).join("config.json"),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker/config.json")
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The keys a registry may have in `auths`.
fn config_keys(registry: &str) -> Vec<String> {
    if registry == "docker.io" {
        vec![
            String::from("https://index.docker.io/v1/"),
            String::from("index.docker.io"),
            String::from("docker.io"),
            String::from("registry-1.docker.io"),
        ]
    } else {
        vec![
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
        ]
    }
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()) {
        let v = T.iter().position(|t| *t == c)? as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Base64 (standard alphabet, padded).
pub fn encode_base64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Runs `docker-credential-<helper> get` for `server`.
fn from_helper(helper: &str, server: &str) -> Option<Credentials> {
    use std::io::Write;
    let mut child = std::process::Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(server.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct HelperAnswer {
        username: String,
        secret: String,
    }
    let a: HelperAnswer = serde_json::from_slice(&out.stdout).ok()?;
    Some(Credentials {
        username: a.username,
        password: a.secret,
    })
}

/// The credentials stored for `registry`, if any.
pub fn lookup(registry: &str) -> Result<Option<Credentials>, RegistryError> {
    let path = docker_config_path();
    let config: DockerConfig = match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| RegistryError::Other(format!("{}: {e}", path.display())))?,
        Err(_) => return Ok(None),
    };
    let keys = config_keys(registry);
    if let Some(helper) = keys.iter().find_map(|k| config.cred_helpers.get(k)) {
        return Ok(from_helper(helper, &keys[0]));
    }
    for k in &keys {
        if let Some(e) = config.auths.get(k) {
            if let (Some(u), Some(p)) = (&e.username, &e.password) {
                return Ok(Some(Credentials {
                    username: u.clone(),
                    password: p.clone(),
                }));
            }
            if let Some(decoded) = e.auth.as_deref().and_then(decode_base64)
                && let Some((u, p)) = String::from_utf8_lossy(&decoded).split_once(':')
            {
                return Ok(Some(Credentials {
                    username: u.to_string(),
                    password: p.to_string(),
                }));
            }
        }
    }
    if let Some(store) = &config.creds_store {
        return Ok(from_helper(store, &keys[0]));
    }
    Ok(None)
}

/// Saves (or with `None`, removes) the credentials of `registry` in the
/// docker config file, keeping everything else in it.
pub fn store(registry: &str, creds: Option<&Credentials>) -> Result<(), RegistryError> {
    let path = docker_config_path();
    let mut config: serde_json::Value = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    let key = config_keys(registry).remove(0);
    let auths = config
        .as_object_mut()
        .ok_or_else(|| RegistryError::Other(format!("{}: not a JSON object", path.display())))?
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}));
    let map = auths.as_object_mut().ok_or_else(|| {
        RegistryError::Other(format!("{}: auths is not an object", path.display()))
    })?;
    match creds {
        Some(c) => {
            map.insert(key, serde_json::json!({ "auth": encode_base64(format!("{}:{}", c.username, c.password).as_bytes()) }));
        }
        None => {
            for k in config_keys(registry) {
                map.remove(&k);
            }
        }
    }
    let io = |e: std::io::Error| RegistryError::Other(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&config).expect("json serializes"),
    )
    .map_err(io)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP Basic.
    Basic,
    /// A bearer token service.
    Bearer {
        /// Token endpoint.
        realm: String,
        /// `service` parameter.
        service: Option<String>,
        /// `scope` parameter the registry asked for.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut map = HashMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        map.insert(key.trim().to_ascii_lowercase(), value.to_string());
        rest = next.trim_start_matches([',', ' ']);
    }
    Some(Challenge::Bearer {
        realm: map.remove("realm")?,
        service: map.remove("service"),
        scope: map.remove("scope"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_base64() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        for s in ["", "a", "user:pass", "héllo wörld!"] {
            assert_eq!(
                decode_base64(&encode_base64(s.as_bytes())).unwrap(),
                s.as_bytes()
            );
        }
        assert_eq!(encode_base64(b"user:pass"), "dXNlcjpwYXNz");
    }
}
