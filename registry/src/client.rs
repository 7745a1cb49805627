//! The distribution API over HTTP: manifests (with platform selection from
//! an index), streamed and verified blobs, uploads with existence checks,
//! and auth (Basic, Bearer tokens cached per scope) with retries.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::auth::{self, Challenge, Credentials};
use crate::{Platform, PulledManifest, Reference, RegistryError};

/// Manifest media types rbuild accepts.
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Blobs larger than this are uploaded in chunks.
const CHUNKED_ABOVE: u64 = 64 << 20;

/// Size of one uploaded chunk.
const CHUNK: u64 = 16 << 20;

/// How many times a request is tried on transport errors and 5xx answers.
const ATTEMPTS: u32 = 3;

/// Client options.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Hosts allowed over plain HTTP besides loopback.
    pub insecure_registries: Vec<String>,
}

/// How a registry wants us to authenticate, once known.
#[derive(Debug, Clone)]
enum Auth {
    Basic(Credentials),
    Bearer(String),
}

/// The registry client. Cheap to clone; tokens are shared.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    options: ClientOptions,
    /// `registry` or `registry scope` → auth to send.
    auth: Arc<Mutex<HashMap<String, Auth>>>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn other(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Other(e.to_string())
}

/// A transport error with its causes (reqwest's own message rarely says
/// what went wrong: "error sending request for url (…)").
fn transport(what: &str, e: &reqwest::Error) -> RegistryError {
    let mut message = format!("{what}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    RegistryError::Other(message)
}

/// Whether a failed request is worth another attempt: the connection could
/// not be made, timed out, or broke before a complete answer arrived (reset,
/// closed, or a truncated status line or headers).
fn retryable(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request()
}

impl Client {
    /// A client with credentials from `~/.docker/config.json`.
    pub fn new(options: ClientOptions) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .build()
            .map_err(other)?;
        Ok(Self {
            http,
            options,
            auth: Arc::default(),
        })
    }

    fn plain_http(&self, registry: &str) -> bool {
        let host = registry.rsplit_once(':').map_or(registry, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                registry
            }
        });
        host == "localhost"
            || host.starts_with("127.")
            || host == "[::1]"
            || self
                .options
                .insecure_registries
                .iter()
                .any(|r| r == registry || r == host)
    }

    /// `https://host` (or `http://` for loopback and insecure registries).
    fn base(&self, registry: &str) -> String {
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        let scheme = if self.plain_http(registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}")
    }

    /// An upload `Location` made absolute (registries may answer with a path).
    fn absolute(&self, registry: &str, location: &str) -> String {
        if location.starts_with('/') {
            format!("{}{location}", self.base(registry))
        } else {
            location.to_string()
        }
    }

    fn url(&self, r: &Reference, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base(&r.registry), r.repository)
    }

    fn auth_key(registry: &str, scope: &str) -> String {
        format!("{registry} {scope}")
    }

    fn with_auth(&self, rb: RequestBuilder, registry: &str, scope: &str) -> RequestBuilder {
        let map = self.auth.lock().expect("poisoned");
        match map
            .get(&Self::auth_key(registry, scope))
            .or_else(|| map.get(registry))
        {
            Some(Auth::Bearer(t)) => rb.header(AUTHORIZATION, format!("Bearer {t}")),
            Some(Auth::Basic(c)) => rb.basic_auth(&c.username, Some(&c.password)),
            None => rb,
        }
    }

    /// Answers a 401 challenge: fetches a token or sets up Basic auth.
    async fn authenticate(
        &self,
        registry: &str,
        scope: &str,
        header: &str,
    ) -> Result<(), RegistryError> {
        let creds = auth::lookup(registry)?;
        match auth::parse_challenge(header) {
            Some(Challenge::Basic) => {
                let c = creds.ok_or_else(|| RegistryError::Status {
                    registry: registry.to_string(),
                    status: 401,
                    message: String::from("authentication required: run `rbuild login`"),
                })?;
                self.auth
                    .lock()
                    .expect("poisoned")
                    .insert(registry.to_string(), Auth::Basic(c));
                Ok(())
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let token = self
                    .token(registry, &realm, service.as_deref(), scope, creds.as_ref())
                    .await?;
                self.auth
                    .lock()
                    .expect("poisoned")
                    .insert(Self::auth_key(registry, scope), Auth::Bearer(token));
                Ok(())
            }
            None => Err(RegistryError::Other(format!(
                "{registry}: unsupported authentication challenge {header:?}"
            ))),
        }
    }

    async fn token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        creds: Option<&Credentials>,
    ) -> Result<String, RegistryError> {
        let mut q: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            q.push(("service", s));
        }
        // Several scopes (space-separated here) are repeated parameters.
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            q.push(("scope", s));
        }
        let url = reqwest::Url::parse_with_params(realm, &q)
            .map_err(|e| other(format!("{registry}: bad token realm {realm:?}: {e}")))?;
        let mut rb = self.http.get(url);
        if let Some(c) = creds {
            rb = rb.basic_auth(&c.username, Some(&c.password));
        }
        let resp = rb
            .send()
            .await
            .map_err(|e| other(format!("{registry}: token request: {e}")))?;
        if !resp.status().is_success() {
            return Err(status_error(registry, resp).await);
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: TokenAnswer = resp
            .json()
            .await
            .map_err(|e| other(format!("{registry}: token answer: {e}")))?;
        t.token
            .or(t.access_token)
            .ok_or_else(|| other(format!("{registry}: the token service returned no token")))
    }

    /// Sends a request built by `build`, answering auth challenges and
    /// retrying transport errors and 5xx answers with backoff.
    async fn send(
        &self,
        registry: &str,
        scope: &str,
        build: &(dyn Fn() -> RequestBuilder + Sync),
    ) -> Result<Response, RegistryError> {
        let mut authed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.with_auth(build(), registry, scope).send().await;
            match result {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !authed => {
                    let header = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    self.authenticate(registry, scope, &header).await?;
                    authed = true;
                }
                Ok(resp)
                    if resp.status() == StatusCode::TOO_MANY_REQUESTS && attempt < ATTEMPTS =>
                {
                    // Rate limited: wait as long as the registry asks (capped).
                    let wait = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map_or(Duration::from_millis(500 << attempt), |s| {
                            Duration::from_secs(s.min(30))
                        });
                    tokio::time::sleep(wait).await;
                }
                Ok(resp) if resp.status().is_server_error() && attempt < ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Ok(resp) => return Ok(resp),
                Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Err(e) => return Err(transport(registry, &e)),
            }
        }
    }

    fn pull_scope(r: &Reference) -> String {
        format!("repository:{}:pull", r.repository)
    }

    fn push_scope(r: &Reference) -> String {
        format!("repository:{}:pull,push", r.repository)
    }

    async fn get_manifest(
        &self,
        r: &Reference,
        by: &str,
    ) -> Result<(String, Vec<u8>), RegistryError> {
        let url = self.url(r, &format!("manifests/{by}"));
        let build = || {
            self.http
                .get(&url)
                .header(ACCEPT, MANIFEST_TYPES.join(", "))
        };
        let resp = self.send(&r.registry, &Self::pull_scope(r), &build).await?;
        if !resp.status().is_success() {
            return Err(status_error(&r.to_string(), resp).await);
        }
        let media_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .to_string();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport(&r.to_string(), &e))?
            .to_vec();
        if by.starts_with("sha256:") && sha256_hex(&bytes) != by {
            return Err(other(format!(
                "{r}: manifest digest mismatch: expected {by}, got {}",
                sha256_hex(&bytes)
            )));
        }
        Ok((media_type, bytes))
    }

    /// Fetches the manifest for `reference`, selecting `platform` from an index.
    pub async fn pull_manifest(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<PulledManifest, RegistryError> {
        let (mut media_type, mut bytes) = self
            .get_manifest(reference, reference.manifest_ref())
            .await?;
        let doc: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| other(format!("{reference}: bad manifest: {e}")))?;
        if let Some(list) = doc["manifests"].as_array() {
            let pick = |variant_too: bool| {
                list.iter().find(|m| {
                    let p = &m["platform"];
                    p["os"] == platform.os.as_str()
                        && p["architecture"] == platform.architecture.as_str()
                        && (!variant_too
                            || platform
                                .variant
                                .as_deref()
                                .is_none_or(|v| p["variant"].as_str().is_none_or(|pv| pv == v)))
                })
            };
            let chosen = pick(true).or_else(|| pick(false)).ok_or_else(|| {
                other(format!(
                    "{reference}: no image for platform {}/{} in the index",
                    platform.os, platform.architecture
                ))
            })?;
            let digest = chosen["digest"]
                .as_str()
                .ok_or_else(|| other(format!("{reference}: index entry without digest")))?;
            (media_type, bytes) = self.get_manifest(reference, digest).await?;
        }
        let manifest: oci_spec::image::ImageManifest = serde_json::from_slice(&bytes)
            .map_err(|e| other(format!("{reference}: bad image manifest: {e}")))?;
        if media_type.is_empty() {
            media_type = manifest.media_type().as_ref().map_or_else(
                || String::from("application/vnd.oci.image.manifest.v1+json"),
                |m| m.to_string(),
            );
        }
        Ok(PulledManifest {
            digest: sha256_hex(&bytes),
            media_type,
            bytes,
            manifest,
        })
    }

    /// Streams a blob into `sink`, verifying its digest; returns its size.
    pub async fn pull_blob(
        &self,
        reference: &Reference,
        digest: &str,
        sink: &mut (dyn Write + Send),
    ) -> Result<u64, RegistryError> {
        let url = self.url(reference, &format!("blobs/{digest}"));
        let build = || self.http.get(&url);
        let mut resp = self
            .send(&reference.registry, &Self::pull_scope(reference), &build)
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(&format!("{reference} blob {digest}"), resp).await);
        }
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| transport(&format!("{reference} blob {digest}"), &e))?
        {
            hasher.update(&chunk);
            size += chunk.len() as u64;
            sink.write_all(&chunk)
                .map_err(|e| other(format!("write blob {digest}: {e}")))?;
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest {
            return Err(other(format!(
                "{reference}: blob digest mismatch: expected {digest}, got {actual}"
            )));
        }
        Ok(size)
    }

    /// Whether the registry has blob `digest` in the reference's repository.
    pub async fn has_blob(
        &self,
        reference: &Reference,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let url = self.url(reference, &format!("blobs/{digest}"));
        let build = || self.http.head(&url);
        let resp = self
            .send(&reference.registry, &Self::push_scope(reference), &build)
            .await?;
        Ok(resp.status().is_success())
    }

    /// Uploads the file at `path` as blob `digest`, unless the registry has
    /// it; with `mount_from`, first asks to mount it from that repository
    /// of the same registry (falling back to an upload).
    pub async fn push_blob(
        &self,
        reference: &Reference,
        digest: &str,
        path: &Path,
    ) -> Result<(), RegistryError> {
        self.push_blob_from(reference, digest, path, None).await
    }

    /// [`Client::push_blob`] with an optional cross-repository mount source.
    pub async fn push_blob_from(
        &self,
        reference: &Reference,
        digest: &str,
        path: &Path,
        mount_from: Option<&str>,
    ) -> Result<(), RegistryError> {
        if self.has_blob(reference, digest).await? {
            return Ok(());
        }
        let mut scope = Self::push_scope(reference);
        let url = self.url(reference, "blobs/uploads/");
        let mut mounted = None;
        if let Some(from) = mount_from {
            // A mount needs pull access to the source repository as well;
            // without it (a 401 or 403), upload as if there were no source.
            let mount_scope = format!("{scope} repository:{from}:pull");
            let mount_url = format!("{url}?mount={digest}&from={from}");
            let build = || self.http.post(&mount_url).header("Content-Length", "0");
            let resp = self.send(&reference.registry, &mount_scope, &build).await?;
            if !matches!(
                resp.status(),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            ) {
                scope = mount_scope;
                mounted = Some(resp);
            }
        }
        let resp = match mounted {
            Some(resp) => resp,
            None => {
                let build = || self.http.post(&url).header("Content-Length", "0");
                self.send(&reference.registry, &scope, &build).await?
            }
        };
        match resp.status() {
            StatusCode::CREATED => return Ok(()),
            StatusCode::ACCEPTED => {}
            _ => return Err(status_error(&format!("{reference} upload"), resp).await),
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| other(format!("{reference}: upload without a Location")))?
            .to_string();
        let location = self.absolute(&reference.registry, &location);
        let size = std::fs::metadata(path)
            .map_err(|e| other(format!("{}: {e}", path.display())))?
            .len();
        if size > CHUNKED_ABOVE {
            return self
                .upload_chunked(reference, &scope, location, digest, path, size)
                .await;
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{sep}digest={digest}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| other(format!("{}: {e}", path.display())))?;
            let rb = self
                .http
                .request(Method::PUT, &put_url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header("Content-Length", size.to_string())
                .body(reqwest::Body::from(file));
            let resp = self.with_auth(rb, &reference.registry, &scope).send().await;
            match resp {
                Ok(r) if r.status() == StatusCode::CREATED => return Ok(()),
                Ok(r) if r.status().is_server_error() && attempt < ATTEMPTS => {}
                Ok(r) => {
                    // An earlier attempt may have been served with its answer
                    // lost: the upload session is gone then, the blob there.
                    if attempt > 1
                        && r.status() == StatusCode::NOT_FOUND
                        && self.has_blob(reference, digest).await?
                    {
                        return Ok(());
                    }
                    return Err(status_error(&format!("{reference} blob {digest}"), r).await);
                }
                Err(e) if attempt < ATTEMPTS && retryable(&e) => {}
                Err(e) => return Err(transport(&format!("{reference} blob {digest}"), &e)),
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
    }

    /// A chunked upload: PATCHes of `CHUNK` bytes (each to the Location the
    /// previous answer gave), then the closing PUT with the digest.
    async fn upload_chunked(
        &self,
        reference: &Reference,
        scope: &str,
        mut location: String,
        digest: &str,
        path: &Path,
        size: u64,
    ) -> Result<(), RegistryError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let what = || format!("{reference} blob {digest}");
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| other(format!("{}: {e}", path.display())))?;
        let mut offset = 0u64;
        while offset < size {
            let len = CHUNK.min(size - offset);
            let mut buf = vec![0u8; len as usize];
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|e| other(format!("{}: {e}", path.display())))?;
            file.read_exact(&mut buf)
                .await
                .map_err(|e| other(format!("{}: {e}", path.display())))?;
            let rb = self
                .http
                .patch(&location)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header("Content-Range", format!("{offset}-{}", offset + len - 1))
                .header("Content-Length", len.to_string())
                .body(buf);
            let resp = self
                .with_auth(rb, &reference.registry, scope)
                .send()
                .await
                .map_err(|e| other(format!("{}: {e}", what())))?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(status_error(&what(), resp).await);
            }
            let next = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| other(format!("{}: chunk answer without a Location", what())))?;
            location = self.absolute(&reference.registry, next);
            offset += len;
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let rb = self
            .http
            .put(format!("{location}{sep}digest={digest}"))
            .header("Content-Length", "0");
        let resp = self
            .with_auth(rb, &reference.registry, scope)
            .send()
            .await
            .map_err(|e| other(format!("{}: {e}", what())))?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(&what(), resp).await);
        }
        Ok(())
    }

    /// Uploads a manifest under the reference's tag (or digest); returns its digest.
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, RegistryError> {
        let url = self.url(
            reference,
            &format!("manifests/{}", reference.manifest_ref()),
        );
        let body = bytes.to_vec();
        let build = || {
            self.http
                .put(&url)
                .header(CONTENT_TYPE, media_type)
                .body(body.clone())
        };
        let resp = self
            .send(&reference.registry, &Self::push_scope(reference), &build)
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(&format!("{reference} manifest"), resp).await);
        }
        Ok(sha256_hex(bytes))
    }

    /// Checks `creds` against `registry` (as `docker login` does).
    pub async fn login(&self, registry: &str, creds: &Credentials) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", self.base(registry));
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| other(format!("{registry}: {e}")))?;
        if resp.status().is_success() {
            return Ok(());
        }
        let header = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let check = match auth::parse_challenge(&header) {
            Some(Challenge::Bearer { realm, service, .. }) => self
                .token(registry, &realm, service.as_deref(), "", Some(creds))
                .await
                .map(|_| ()),
            _ => {
                let resp = self
                    .http
                    .get(&url)
                    .basic_auth(&creds.username, Some(&creds.password))
                    .send()
                    .await
                    .map_err(|e| other(format!("{registry}: {e}")))?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(status_error(registry, resp).await)
                }
            }
        };
        check.map_err(|e| match e {
            RegistryError::Status {
                registry, status, ..
            } => RegistryError::Status {
                registry,
                status,
                message: String::from("login failed: unauthorized: wrong user name or password"),
            },
            e => e,
        })
    }
}

/// An error from a registry's answer: status plus its error codes and messages.
async fn status_error(what: &str, resp: Response) -> RegistryError {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v["errors"].as_array().map(|errs| {
                errs.iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e["code"].as_str().unwrap_or(""),
                            e["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| text.chars().take(200).collect());
    RegistryError::Status {
        registry: what.to_string(),
        status,
        message,
    }
}
