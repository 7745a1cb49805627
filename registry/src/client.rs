//! The distribution API over HTTP: manifests (with platform selection from
//! an index), streamed and verified blobs, uploads with existence checks,
//! and auth (Basic, Bearer tokens cached per scope, renewed on a 401) with
//! retries. A connection must be made within
//! [`ClientOptions::connect_timeout`] and answer within
//! [`ClientOptions::first_byte_timeout`] (seconds: a registry that accepts
//! and never answers fails fast); once a transfer has started (a body is
//! moving, or the registry verifies a closed upload) only the long
//! [`ClientOptions::idle_timeout`] applies (no data moved for that long). A
//! stalled connection is retried, a cut blob download resumed with a
//! `Range` request, a failed upload chunk recovered from the upload's
//! status. Answers read whole are capped: manifests and indexes at
//! [`MAX_MANIFEST_BYTES`] (containerd's limit), token answers at
//! [`MAX_TOKEN_BYTES`], error bodies at [`MAX_ERROR_BYTES`].

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE, WWW_AUTHENTICATE,
};
use reqwest::{RequestBuilder, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::answers;
use crate::auth::{self, Challenge, Credentials};
use crate::{Platform, PulledManifest, Reference, RegistryError};

/// Manifest media types rbuild accepts.
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// How many times a request is tried on transport errors and 5xx answers.
const ATTEMPTS: u32 = 3;

/// How long to wait for the body of an error answer.
const ERROR_BODY_WAIT: Duration = Duration::from_secs(10);

/// The largest manifest, index or image config accepted: containerd's
/// limit (4 MiB), far above real ones (a few KiB).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// The largest token answer read (real ones are a few KiB of JWT).
pub const MAX_TOKEN_BYTES: usize = 1 << 20;

/// The most of an error answer's body read, for its message.
pub const MAX_ERROR_BYTES: usize = 64 << 10;

/// Client options.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Hosts allowed over plain HTTP besides loopback.
    pub insecure_registries: Vec<String>,
    /// How long making a connection (TCP and TLS) may take: 5 s by default.
    pub connect_timeout: Duration,
    /// How long a request may wait for the first byte of its answer while
    /// no transfer has started (no byte of a request body taken): 10 s by
    /// default, so a registry that accepts and never answers fails in
    /// seconds (three attempts), not minutes.
    pub first_byte_timeout: Duration,
    /// How long a transfer that has started may move no data at all (no
    /// byte of a request body sent, no answer or byte of an answer
    /// received) before the attempt is abandoned as stalled (and retried,
    /// or resumed); also how long the request that closes an upload waits
    /// while the registry verifies the blob. 60 s by default. This is an
    /// idle timeout, not a deadline: a slow transfer that keeps moving is
    /// never cut.
    pub idle_timeout: Duration,
    /// Blobs larger than this are uploaded in chunks (64 MiB by default).
    pub chunked_above: u64,
    /// Size of one uploaded chunk (16 MiB by default).
    pub chunk_size: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            chunked_above: 64 << 20,
            chunk_size: 16 << 20,
        }
    }
}

/// How a registry wants us to authenticate, once known.
#[derive(Debug, Clone)]
enum Auth {
    Basic(Credentials),
    /// A token and when it expires.
    Bearer(String, Instant),
}

/// When a transfer last moved data, and whether it moved any yet.
#[derive(Debug)]
struct Progress(Mutex<(Instant, bool)>);

impl Progress {
    fn start() -> Arc<Self> {
        Arc::new(Self(Mutex::new((Instant::now(), false))))
    }

    fn touch(&self) {
        *self.0.lock().expect("poisoned") = (Instant::now(), true);
    }

    fn last(&self) -> Instant {
        self.0.lock().expect("poisoned").0
    }

    fn moved(&self) -> bool {
        self.0.lock().expect("poisoned").1
    }
}

/// How long a request may wait for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// The first-byte timeout until a request body moves, then the idle
    /// timeout.
    FirstByte,
    /// The idle timeout from the start: the request that closes an upload,
    /// answered only once the registry has verified the blob.
    Verification,
}

/// Why an attempt failed before an answer arrived.
enum Failure {
    Http(reqwest::Error),
    /// No data moved for this long.
    Stalled(Duration),
}

/// Builds a request; gets the progress clock of the attempt (for bodies
/// from [`file_body`]).
type Build<'a> = dyn Fn(&Arc<Progress>) -> Result<RequestBuilder, RegistryError> + Sync + 'a;

/// `len` bytes of the file at `path` from `offset`, as a request body whose
/// progress `progress` follows: a thread reads the file in 1 MiB chunks into
/// a short channel reqwest takes them from, and each chunk taken is
/// progress (so a peer that stops reading the body is noticed).
fn file_body(
    path: &Path,
    offset: u64,
    len: u64,
    progress: &Arc<Progress>,
) -> Result<reqwest::Body, RegistryError> {
    use std::io::{Read, Seek};
    const CHUNK: usize = 1 << 20;
    let io = |e: std::io::Error| other(format!("{}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(io)?;
    file.seek(std::io::SeekFrom::Start(offset)).map_err(io)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    let progress = progress.clone();
    std::thread::spawn(move || {
        let mut file = file.take(len);
        loop {
            let mut buf = Vec::with_capacity(CHUNK);
            let chunk = match (&mut file).take(CHUNK as u64).read_to_end(&mut buf) {
                Ok(0) => break,
                Ok(_) => Ok(buf),
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            // Ends when the file does, or when the body is dropped.
            if tx.blocking_send(chunk).is_err() || failed {
                break;
            }
            progress.touch();
        }
    });
    let chunks = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Ok(reqwest::Body::wrap_stream(chunks))
}

/// The end (inclusive) of a `Range: 0-<end>` upload status header.
fn range_end(resp: &Response) -> Option<u64> {
    let v = resp.headers().get(RANGE)?.to_str().ok()?;
    let v = v.strip_prefix("bytes=").unwrap_or(v);
    v.split_once('-')?.1.trim().parse().ok()
}

/// The registry client. Cheap to clone; tokens are shared.
#[derive(Debug, Clone)]
pub struct Client {
    /// Made on first use (`rbuild run` and cached builds never need it);
    /// the system's root certificates are read at its first TLS handshake
    /// (see `crate::tls`).
    http: Arc<OnceLock<reqwest::Client>>,
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

impl Failure {
    fn retryable(&self) -> bool {
        match self {
            Self::Http(e) => retryable(e),
            Self::Stalled(_) => true,
        }
    }

    fn into_error(self, what: &str) -> RegistryError {
        match self {
            Self::Http(e) => transport(what, &e),
            Self::Stalled(after) => RegistryError::Timeout {
                what: what.to_string(),
                after,
            },
        }
    }
}

impl Client {
    /// A client with credentials from `~/.docker/config.json`.
    pub fn new(options: ClientOptions) -> Result<Self, RegistryError> {
        Ok(Self {
            http: Arc::default(),
            options,
            auth: Arc::default(),
        })
    }

    /// The HTTP client, made the first time one is needed.
    fn http(&self) -> Result<&reqwest::Client, RegistryError> {
        if let Some(http) = self.http.get() {
            return Ok(http);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.options.connect_timeout)
            .tls_backend_preconfigured(crate::tls::client_config()?)
            .build()
            .map_err(other)?;
        Ok(self.http.get_or_init(|| http))
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
            // An expired token is not sent: the 401 fetches a new one.
            Some(Auth::Bearer(t, expires)) if Instant::now() < *expires => {
                rb.header(AUTHORIZATION, format!("Bearer {t}"))
            }
            Some(Auth::Bearer(..)) => rb,
            Some(Auth::Basic(c)) => rb.basic_auth(&c.username, Some(&c.password)),
            None => rb,
        }
    }

    /// Answers a 401 challenge: fetches a token (replacing the cached one,
    /// which the registry no longer takes) or sets up Basic auth.
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
                let (token, lifetime) = self
                    .token(registry, &realm, service.as_deref(), scope, creds.as_ref())
                    .await?;
                self.auth.lock().expect("poisoned").insert(
                    Self::auth_key(registry, scope),
                    Auth::Bearer(token, Instant::now() + lifetime),
                );
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
    ) -> Result<(String, Duration), RegistryError> {
        let http = self.http()?;
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
        let mut rb = http.get(url);
        if let Some(c) = creds {
            rb = rb.basic_auth(&c.username, Some(&c.password));
        }
        let resp = self
            .attempt(rb, &Progress::start(), Wait::FirstByte)
            .await
            .map_err(|e| e.into_error(&format!("{registry}: token request")))?;
        if !resp.status().is_success() {
            return Err(status_error(registry, resp).await);
        }
        let body = self
            .read_body(&format!("{registry}: token answer"), resp, MAX_TOKEN_BYTES)
            .await?;
        answers::token(&body).map_err(|e| other(format!("{registry}: token answer: {e}")))
    }

    /// Sends a request built by `build`, answering auth challenges and
    /// retrying transport errors, stalls and 5xx answers with backoff.
    async fn send(
        &self,
        registry: &str,
        scope: &str,
        build: &(dyn Fn() -> RequestBuilder + Sync),
    ) -> Result<Response, RegistryError> {
        let (resp, _) = self
            .exchange(registry, scope, ATTEMPTS, Wait::FirstByte, &|_| Ok(build()))
            .await?;
        Ok(resp)
    }

    /// Sends one attempt of a request, abandoning it when its answer's
    /// headers have not arrived in time: within the first-byte timeout
    /// while no transfer has started, then within the idle timeout of the
    /// last data moved (by the clock `progress`, which a request body
    /// pushes on); see [`Wait`].
    async fn attempt(
        &self,
        rb: RequestBuilder,
        progress: &Progress,
        wait: Wait,
    ) -> Result<Response, Failure> {
        let limit = || {
            if wait == Wait::Verification || progress.moved() {
                self.options.idle_timeout
            } else {
                self.options.first_byte_timeout
            }
        };
        let send = rb.send();
        tokio::pin!(send);
        loop {
            tokio::select! {
                result = &mut send => return result.map_err(Failure::Http),
                () = tokio::time::sleep_until(progress.last() + limit()) => {
                    let limit = limit();
                    if progress.last() + limit <= Instant::now() {
                        return Err(Failure::Stalled(limit));
                    }
                }
            }
        }
    }

    /// Sends a request built by `build` up to `attempts` times: answers
    /// auth challenges (a 401 also when a cached token was sent: it expired
    /// or was revoked, so a new one is fetched, once) and retries transport
    /// errors, stalls, 429 and 5xx answers with backoff. Returns the answer
    /// and how many attempts it took.
    async fn exchange(
        &self,
        registry: &str,
        scope: &str,
        attempts: u32,
        wait: Wait,
        build: &Build<'_>,
    ) -> Result<(Response, u32), RegistryError> {
        let mut authed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let progress = Progress::start();
            let rb = self.with_auth(build(&progress)?, registry, scope);
            let result = self.attempt(rb, &progress, wait).await;
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
                    // Not a failed attempt.
                    attempt -= 1;
                }
                Ok(resp)
                    if resp.status() == StatusCode::TOO_MANY_REQUESTS && attempt < attempts =>
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
                Ok(resp) if resp.status().is_server_error() && attempt < attempts => {
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Ok(resp) => return Ok((resp, attempt)),
                Err(e) if attempt < attempts && e.retryable() => {
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Err(e) => return Err(e.into_error(registry)),
            }
        }
    }

    /// Reads a whole (small) answer body of at most `max` bytes, each read
    /// within the idle timeout; a larger one is refused as soon as it says
    /// so (`Content-Length`) or grows past `max`.
    async fn read_body(
        &self,
        what: &str,
        mut resp: Response,
        max: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        let too_large = || other(format!("{what}: the answer is larger than {max} bytes"));
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        let idle = self.options.idle_timeout;
        let mut out = Vec::new();
        loop {
            match tokio::time::timeout(idle, resp.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    if out.len() + chunk.len() > max {
                        return Err(too_large());
                    }
                    out.extend_from_slice(&chunk);
                }
                Ok(Ok(None)) => return Ok(out),
                Ok(Err(e)) => return Err(transport(what, &e)),
                Err(_) => return Err(Failure::Stalled(idle).into_error(what)),
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
        let http = self.http()?;
        let url = self.url(r, &format!("manifests/{by}"));
        let build = || http.get(&url).header(ACCEPT, MANIFEST_TYPES.join(", "));
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
        let bytes = self
            .read_body(&r.to_string(), resp, MAX_MANIFEST_BYTES)
            .await?;
        if by.starts_with("sha256:") && sha256_hex(&bytes) != by {
            return Err(other(format!(
                "{r}: manifest digest mismatch: expected {by}, got {}",
                sha256_hex(&bytes)
            )));
        }
        Ok((media_type, bytes))
    }

    /// The manifest or index `reference` names, as served: its media type
    /// and bytes (digest-verified when the reference has a digest).
    pub async fn raw_manifest(
        &self,
        reference: &Reference,
    ) -> Result<(String, Vec<u8>), RegistryError> {
        self.get_manifest(reference, reference.manifest_ref()).await
    }

    /// Makes blob `digest` of repository `from` (same registry) a blob of
    /// `reference`'s repository without sending it: done when it is there
    /// already or the registry mounts it; an error when the registry would
    /// rather have it uploaded (its bytes are not at hand).
    pub async fn mount_blob(
        &self,
        reference: &Reference,
        digest: &str,
        from: &str,
    ) -> Result<(), RegistryError> {
        if self.has_blob(reference, digest).await? {
            return Ok(());
        }
        let http = self.http()?;
        let scope = format!("{} repository:{from}:pull", Self::push_scope(reference));
        let url = self.url(reference, "blobs/uploads/");
        let mount_url = format!("{url}?mount={digest}&from={from}");
        let build = || http.post(&mount_url).header("Content-Length", "0");
        let resp = self.send(&reference.registry, &scope, &build).await?;
        match resp.status() {
            StatusCode::CREATED => Ok(()),
            status => Err(other(format!(
                "{reference}: the registry did not mount {digest} from {from} ({status}); blobs are mounted, never pulled and sent again"
            ))),
        }
    }

    /// Whether `reference`'s registry can be reached: one `HEAD` of the
    /// manifest, unauthenticated and not retried, answered within `within`.
    /// Any answer below 500 (a 401 or 404 too) is a registry there; no
    /// connection (refused, DNS, TLS), a 5xx answer or none in time is the
    /// error.
    pub async fn probe(
        &self,
        reference: &Reference,
        within: Duration,
    ) -> Result<(), RegistryError> {
        // A plain-HTTP registry needs no TLS: a client without the
        // system's root certificates, whose loading is most of the probe
        // (80 ms of a debug build's no-op build under load, the connect
        // after it a millisecond).
        let plain;
        let http = if self.plain_http(&reference.registry) {
            plain = reqwest::Client::builder()
                .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")))
                .tls_certs_only(std::iter::empty())
                .build()
                .map_err(other)?;
            &plain
        } else {
            self.http()?
        };
        let url = self.url(
            reference,
            &format!("manifests/{}", reference.manifest_ref()),
        );
        let send = http
            .head(&url)
            .header(ACCEPT, MANIFEST_TYPES.join(", "))
            .timeout(within)
            .send();
        let registry = &reference.registry;
        match tokio::time::timeout(within, send).await {
            Ok(Ok(resp)) if resp.status().is_server_error() => Err(RegistryError::Status {
                registry: registry.clone(),
                status: resp.status().as_u16(),
                message: String::from("server error"),
            }),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if !e.is_timeout() => Err(transport(registry, &e)),
            Ok(Err(_)) | Err(_) => Err(RegistryError::Timeout {
                what: format!("{registry}: manifest HEAD"),
                after: within,
            }),
        }
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
        let bad = |e: answers::AnswerError| other(format!("{reference}: {e}"));
        if let Some(digest) = answers::platform_manifest(&bytes, platform).map_err(bad)? {
            (media_type, bytes) = self.get_manifest(reference, &digest).await?;
        }
        let manifest = answers::image_manifest(&bytes).map_err(bad)?;
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
    ///
    /// When the answer breaks off in the middle of the body (the connection
    /// is cut, or moves no data for the idle timeout), the rest is asked for
    /// with a `Range` request, up to 3 times in a row without progress, and
    /// the digest is still checked over the whole blob.
    ///
    /// **On error, `sink` may hold part of the blob** (whatever arrived
    /// before the failure, or all of it when the digest does not match):
    /// the caller must discard what it wrote (e.g. write to a temporary
    /// file and only rename it into place on `Ok`). On `Ok`, `sink` got
    /// exactly the blob's bytes, once, in order.
    pub async fn pull_blob(
        &self,
        reference: &Reference,
        digest: &str,
        sink: &mut (dyn Write + Send),
    ) -> Result<u64, RegistryError> {
        self.pull_blob_within(reference, digest, sink, u64::MAX)
            .await
    }

    /// [`Client::pull_blob`] for an image config: refused (with an error
    /// naming it) once it grows past [`MAX_MANIFEST_BYTES`], as containerd
    /// refuses one.
    pub async fn pull_config(
        &self,
        reference: &Reference,
        digest: &str,
        sink: &mut (dyn Write + Send),
    ) -> Result<u64, RegistryError> {
        self.pull_blob_within(reference, digest, sink, MAX_MANIFEST_BYTES as u64)
            .await
    }

    /// [`Client::pull_blob`], refusing a blob larger than `max` bytes.
    async fn pull_blob_within(
        &self,
        reference: &Reference,
        digest: &str,
        sink: &mut (dyn Write + Send),
        max: u64,
    ) -> Result<u64, RegistryError> {
        let http = self.http()?;
        let what = format!("{reference} blob {digest}");
        let url = self.url(reference, &format!("blobs/{digest}"));
        let scope = Self::pull_scope(reference);
        let idle = self.options.idle_timeout;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        // Failed reads in a row without a byte of progress.
        let mut failures = 0;
        'resume: loop {
            let from = size;
            let build = || {
                let rb = http.get(&url);
                if from > 0 {
                    rb.header(RANGE, format!("bytes={from}-"))
                } else {
                    rb
                }
            };
            let mut resp = self.send(&reference.registry, &scope, &build).await?;
            if from == 0 && !resp.status().is_success() {
                return Err(status_error(&what, resp).await);
            }
            if from > 0 {
                let start = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split_once('-'))
                    .and_then(|(s, _)| s.parse::<u64>().ok());
                if resp.status() != StatusCode::PARTIAL_CONTENT || start != Some(from) {
                    let status = resp.status();
                    return Err(other(format!(
                        "{what}: cannot resume the download at byte {from}: the registry answered {status} to a Range request"
                    )));
                }
            }
            let failure = loop {
                match tokio::time::timeout(idle, resp.chunk()).await {
                    Ok(Ok(Some(chunk))) => {
                        if size + chunk.len() as u64 > max {
                            return Err(other(format!("{what}: larger than {max} bytes")));
                        }
                        hasher.update(&chunk);
                        size += chunk.len() as u64;
                        failures = 0;
                        sink.write_all(&chunk)
                            .map_err(|e| other(format!("write blob {digest}: {e}")))?;
                    }
                    Ok(Ok(None)) => break 'resume,
                    Ok(Err(e)) => break transport(&what, &e),
                    Err(_) => break Failure::Stalled(idle).into_error(&what),
                }
            };
            failures += 1;
            if failures >= ATTEMPTS {
                return Err(failure);
            }
            tokio::time::sleep(Duration::from_millis(200 << failures)).await;
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
        let http = self.http()?;
        let url = self.url(reference, &format!("blobs/{digest}"));
        let build = || http.head(&url);
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
        let http = self.http()?;
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
            let build = || http.post(&mount_url).header("Content-Length", "0");
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
                let build = || http.post(&url).header("Content-Length", "0");
                self.send(&reference.registry, &scope, &build).await?
            }
        };
        match resp.status() {
            StatusCode::CREATED => return Ok(()),
            StatusCode::ACCEPTED => {}
            _ => return Err(status_error(&format!("{reference} upload"), resp).await),
        }
        let location = self.location(reference, &resp)?;
        let size = std::fs::metadata(path)
            .map_err(|e| other(format!("{}: {e}", path.display())))?
            .len();
        if size > self.options.chunked_above {
            return self
                .upload_chunked(reference, &scope, location, digest, path, size)
                .await;
        }
        let build = |progress: &Arc<Progress>| {
            Ok(http
                .put(Self::with_digest(&location, digest))
                .header(CONTENT_TYPE, "application/octet-stream")
                .header("Content-Length", size.to_string())
                .body(file_body(path, 0, size, progress)?))
        };
        self.close_upload(reference, &scope, digest, &build).await
    }

    /// The absolute upload URL in an answer's `Location`.
    fn location(&self, reference: &Reference, resp: &Response) -> Result<String, RegistryError> {
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| other(format!("{reference}: upload answer without a Location")))?;
        Ok(self.absolute(&reference.registry, location))
    }

    fn with_digest(location: &str, digest: &str) -> String {
        let sep = if location.contains('?') { '&' } else { '?' };
        format!("{location}{sep}digest={digest}")
    }

    /// Starts a new upload session; returns its URL.
    async fn start_upload(
        &self,
        reference: &Reference,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let http = self.http()?;
        let url = self.url(reference, "blobs/uploads/");
        let build = || http.post(&url).header("Content-Length", "0");
        let resp = self.send(&reference.registry, scope, &build).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(&format!("{reference} upload"), resp).await);
        }
        self.location(reference, &resp)
    }

    /// Sends the PUT that closes an upload (with the whole blob, or after
    /// its chunks), retried; a 404 on a retry is success when the blob is
    /// there (an earlier attempt was served, its answer lost).
    async fn close_upload(
        &self,
        reference: &Reference,
        scope: &str,
        digest: &str,
        build: &Build<'_>,
    ) -> Result<(), RegistryError> {
        let what = format!("{reference} blob {digest}");
        let (resp, attempts) = self
            .exchange(
                &reference.registry,
                scope,
                ATTEMPTS,
                Wait::Verification,
                build,
            )
            .await
            .map_err(|e| match e {
                RegistryError::Timeout { after, .. } => RegistryError::Timeout {
                    what: what.clone(),
                    after,
                },
                RegistryError::Other(m) => RegistryError::Other(format!("{what}: {m}")),
                e => e,
            })?;
        if resp.status() == StatusCode::CREATED {
            return Ok(());
        }
        if attempts > 1
            && resp.status() == StatusCode::NOT_FOUND
            && self.has_blob(reference, digest).await?
        {
            return Ok(());
        }
        Err(status_error(&what, resp).await)
    }

    /// A chunked upload: PATCHes of `chunk_size` bytes (each to the Location
    /// the previous answer gave), then the closing PUT with the digest.
    ///
    /// A PATCH that fails (connection lost or stalled, 5xx, or the registry
    /// disagreeing on the offset) is recovered as the distribution spec
    /// says: a GET of the upload URL tells how much the registry has
    /// (`Range: 0-<last>`), and the upload goes on from there; when the
    /// session is gone (or the registry will not say), a new one starts
    /// from the beginning. Three failures in a row without progress are
    /// an error.
    async fn upload_chunked(
        &self,
        reference: &Reference,
        scope: &str,
        mut location: String,
        digest: &str,
        path: &Path,
        size: u64,
    ) -> Result<(), RegistryError> {
        let http = self.http()?;
        let what = format!("{reference} blob {digest}");
        let chunk = self.options.chunk_size.max(1);
        let mut offset = 0u64;
        let mut failures = 0;
        while offset < size {
            let len = chunk.min(size - offset);
            let build = |progress: &Arc<Progress>| {
                Ok(http
                    .patch(&location)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header("Content-Range", format!("{offset}-{}", offset + len - 1))
                    .header("Content-Length", len.to_string())
                    .body(file_body(path, offset, len, progress)?))
            };
            // One attempt (a blind retry could send bytes twice), but
            // with a 401 answered by a new token.
            let failure = match self
                .exchange(&reference.registry, scope, 1, Wait::FirstByte, &build)
                .await
            {
                Ok((resp, _)) if resp.status() == StatusCode::ACCEPTED => {
                    location = self.location(reference, &resp)?;
                    offset += len;
                    failures = 0;
                    continue;
                }
                Ok((resp, _))
                    if resp.status().is_server_error()
                        || matches!(
                            resp.status(),
                            StatusCode::BAD_REQUEST
                                | StatusCode::NOT_FOUND
                                | StatusCode::RANGE_NOT_SATISFIABLE
                                | StatusCode::TOO_MANY_REQUESTS
                        ) =>
                {
                    status_error(&what, resp).await
                }
                Ok((resp, _)) => return Err(status_error(&what, resp).await),
                Err(e) => e,
            };
            failures += 1;
            if failures >= ATTEMPTS {
                return Err(failure);
            }
            tokio::time::sleep(Duration::from_millis(200 << failures)).await;
            // Where does the registry stand?
            let status_url = location.clone();
            let build = || http.get(&status_url);
            let status = self.send(&reference.registry, scope, &build).await;
            match status {
                Ok(resp) if resp.status() == StatusCode::NO_CONTENT => {
                    // `0-0` is also what an empty upload says: start over then.
                    let have = range_end(&resp).filter(|e| *e > 0).map_or(0, |e| e + 1);
                    if have > size {
                        return Err(other(format!(
                            "{what}: the registry says it has {have} bytes of {size}"
                        )));
                    }
                    location = self.location(reference, &resp)?;
                    offset = have;
                }
                _ => {
                    location = self.start_upload(reference, scope).await?;
                    offset = 0;
                }
            }
        }
        let put_url = Self::with_digest(&location, digest);
        let build = |_: &Arc<Progress>| Ok(http.put(&put_url).header("Content-Length", "0"));
        self.close_upload(reference, scope, digest, &build).await
    }

    /// Uploads a manifest under the reference's tag (or digest); returns its digest.
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, RegistryError> {
        let http = self.http()?;
        let url = self.url(
            reference,
            &format!("manifests/{}", reference.manifest_ref()),
        );
        let body = bytes.to_vec();
        let build = || {
            http.put(&url)
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
        let http = self.http()?;
        let url = format!("{}/v2/", self.base(registry));
        let resp = self
            .attempt(http.get(&url), &Progress::start(), Wait::FirstByte)
            .await
            .map_err(|e| e.into_error(registry))?;
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
                let rb = http
                    .get(&url)
                    .basic_auth(&creds.username, Some(&creds.password));
                let resp = self
                    .attempt(rb, &Progress::start(), Wait::FirstByte)
                    .await
                    .map_err(|e| e.into_error(registry))?;
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
async fn status_error(what: &str, mut resp: Response) -> RegistryError {
    let status = resp.status().as_u16();
    // The body is only for the message: not worth waiting long for, nor
    // reading past its first [`MAX_ERROR_BYTES`].
    let mut body = Vec::new();
    let _ = tokio::time::timeout(ERROR_BODY_WAIT, async {
        while body.len() < MAX_ERROR_BYTES {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
    })
    .await;
    body.truncate(MAX_ERROR_BYTES);
    let text = String::from_utf8_lossy(&body);
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
        .unwrap_or_else(|| text.into_owned());
    RegistryError::Status {
        registry: what.to_string(),
        status,
        message: printable(&message),
    }
}

/// A registry's message as it may reach a terminal: its first 300
/// characters, control characters (escape sequences) escaped.
fn printable(message: &str) -> String {
    const SHOWN: usize = 300;
    let mut out: String = message
        .chars()
        .take(SHOWN)
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if message.chars().nth(SHOWN).is_some() {
        out.push('…');
    }
    out
}
