//! Credentials and tokens: `~/.docker/config.json` (`auths` entries and
//! credential helpers), `WWW-Authenticate` challenges, and a token cache
//! per registry and scope.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::RegistryError;
use crate::helper::Helper;

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

/// The helper that keeps `registry`'s credentials: its `credHelpers`
/// entry, else `credsStore`.
fn helper_of(config: &DockerConfig, keys: &[String]) -> Option<Helper> {
    keys.iter()
        .find_map(|k| config.cred_helpers.get(k))
        .or(config.creds_store.as_ref())
        .map(|name| Helper::new(name))
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
        return Ok(Helper::new(helper).get(&keys[0]));
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
        return Ok(Helper::new(store).get(&keys[0]));
    }
    Ok(None)
}

/// Saves (or with `None`, removes) the credentials of `registry` in the
/// docker config file, keeping everything else in it.
pub fn store(registry: &str, creds: Option<&Credentials>) -> Result<(), RegistryError> {
    store_in(&docker_config_path(), registry, creds)
}

/// Saves (or with `None`, removes) the credentials of `registry`: through
/// the credential helper the config file at `path` names for it (the
/// file then keeps no copy), else in the file's `auths`. A file that
/// exists but does not parse is never overwritten (it may hold other
/// credentials); the new file is private (0600) from its creation.
pub fn store_in(
    path: &Path,
    registry: &str,
    creds: Option<&Credentials>,
) -> Result<(), RegistryError> {
    let fail = |message: String| RegistryError::Other(format!("{}: {message}", path.display()));
    let mut config: serde_json::Value = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            fail(format!(
                "not valid JSON ({e}); refusing to overwrite it, fix or move it first"
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(fail(e.to_string())),
    };
    let parsed: DockerConfig = serde_json::from_value(config.clone())
        .map_err(|e| fail(format!("refusing to overwrite it: {e}")))?;
    let keys = config_keys(registry);
    let helper = helper_of(&parsed, &keys);
    let auths = config
        .as_object_mut()
        .ok_or_else(|| fail(String::from("not a JSON object; refusing to overwrite it")))?
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or_else(|| {
            fail(String::from(
                "auths is not an object; refusing to overwrite it",
            ))
        })?;
    for k in &keys {
        auths.remove(k);
    }
    match (creds, &helper) {
        (Some(c), Some(h)) => h.store(&keys[0], c)?,
        (None, Some(h)) => h.erase(&keys[0])?,
        (Some(c), None) => {
            let auth = encode_base64(format!("{}:{}", c.username, c.password).as_bytes());
            auths.insert(keys[0].clone(), serde_json::json!({ "auth": auth }));
        }
        (None, None) => {}
    }
    write_private(
        path,
        &serde_json::to_vec_pretty(&config).expect("json serializes"),
    )
    .map_err(|e| fail(e.to_string()))
}

/// Replaces `path` with `bytes` through a temp file beside it that is
/// created with mode 0600 (never readable by others, not even briefly),
/// synced, then renamed over `path`.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("json.tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
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
