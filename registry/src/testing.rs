//! A real registry for tests: Debian's `docker-registry` (the CNCF
//! distribution server) on a free loopback port, with temporary storage,
//! optionally behind htpasswd Basic auth or a bearer token service
//! ([`TokenServer`]); stopped on drop. [`FaultProxy`] sits between a client
//! and a registry and breaks connections on demand.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::auth::encode_base64;

/// How a [`TestRegistry`] authenticates clients.
enum AuthConfig<'a> {
    Open,
    Htpasswd(&'a str, &'a str),
    Token(&'a TokenServer),
}

/// A running registry server.
pub struct TestRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts an open registry.
    pub fn start() -> Self {
        Self::launch(AuthConfig::Open)
    }

    /// Starts a registry that requires `user`/`password` (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> Self {
        Self::launch(AuthConfig::Htpasswd(user, password))
    }

    /// Starts a registry that wants bearer tokens from a [`TokenServer`]
    /// (also started, and returned) that knows `user`/`password` and
    /// grants anonymous clients `pull` only.
    pub fn start_with_token_auth(user: &str, password: &str) -> (Self, TokenServer) {
        let tokens = TokenServer::start(user, password);
        (Self::launch(AuthConfig::Token(&tokens)), tokens)
    }

    fn launch(auth: AuthConfig<'_>) -> Self {
        Self::launch_on_ports(auth, free_port)
    }

    /// Starts the server on a port `pick` gives, and on the next one if
    /// the server ends before it listens: a port found free is only
    /// closed again to be handed to the server, and in that moment
    /// another socket (any connection's local end, with tests running in
    /// parallel) may take it, which a wait for a connection alone would
    /// only notice at its deadline.
    fn launch_on_ports(auth: AuthConfig<'_>, mut pick: impl FnMut() -> u16) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rbuild-registry")
            .tempdir()
            .expect("temp dir");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n",
            dir.path().join("data").display()
        );
        match auth {
            AuthConfig::Open => {}
            AuthConfig::Htpasswd(user, password) => {
                    let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                .output()
                    .expect("htpasswd (apache2-utils) is installed");
                let file: PathBuf = dir.path().join("htpasswd");
                std::fs::write(&file, out.stdout).expect("write htpasswd");
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: rbuild-test\n    path: {}\n",
                    file.display()
                ));
            }
            AuthConfig::Token(tokens) => config.push_str(&format!(
                "auth:\n  token:\n    realm: http://{}/token\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                tokens.addr,
                tokens.cert.display()
            )),
        }
        let binary = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("docker-registry is installed (see .ci/run)");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let addr = format!("127.0.0.1:{}", pick());
            let config_path = dir.path().join("config.yml");
            let http = format!("http:\n  addr: {addr}\n");
            std::fs::write(&config_path, format!("{config}{http}")).expect("write config");
            let mut child = Command::new(binary)
                .arg("serve")
                .arg(&config_path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start docker-registry");
            while std::net::TcpStream::connect(&addr).is_err() {
                if child.try_wait().expect("the registry's state").is_some() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "docker-registry did not start on {addr}"
                );
                std::thread::sleep(Duration::from_millis(25));
            }
            if child.try_wait().expect("the registry's state").is_none() {
                return Self {
                    addr,
                    child,
                    _dir: dir,
                };
            }
        }
    }
}

/// A port no socket holds at this moment.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port()
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `service` a [`TokenServer`] issues tokens for (the JWT audience).
pub const TOKEN_SERVICE: &str = "rbuild-test";

/// The issuer of a [`TokenServer`]'s tokens.
pub const TOKEN_ISSUER: &str = "rbuild-test-issuer";

/// How long a [`TokenServer`]'s tokens are valid, in seconds, unless
/// [`TokenServer::set_token_lifetime`] says otherwise.
const TOKEN_LIFETIME: i64 = 300;

/// A bearer token service for a [`TestRegistry`]: plain HTTP/1.1 on a free
/// loopback port, answering `GET /token?service=…&scope=…` (the
/// distribution token protocol) with RS256 JWTs signed by the `openssl`
/// CLI with a fresh self-signed key. Valid Basic credentials get the
/// actions they ask for, no credentials get `pull` only, wrong ones a 401;
/// [`TokenServer::forbid`] takes a repository away from everybody.
/// Stopped on drop.
pub struct TokenServer {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// How many tokens were issued so far.
    pub issued: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    forbidden: Arc<Mutex<Vec<String>>>,
    lifetime: Arc<AtomicI64>,
    /// The certificate the registry trusts (PEM).
    cert: PathBuf,
    stop: Arc<AtomicBool>,
    _dir: Arc<tempfile::TempDir>,
}

/// What a token request handler needs.
struct TokenIssuer {
    /// `Basic base64(user:password)` as a client sends it.
    basic: String,
    user: String,
    key: PathBuf,
    /// Standard base64 of the certificate's DER form (the `x5c` entry).
    cert_der_b64: String,
    issued: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    /// Repositories nobody gets any access to.
    forbidden: Arc<Mutex<Vec<String>>>,
    /// Seconds from issue to the `exp` claim.
    lifetime: Arc<AtomicI64>,
}

/// A token request a [`TokenServer`] got with valid or no credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The authenticated user; `None` for an anonymous request.
    pub user: Option<String>,
    /// The `scope` parameters, e.g. `repository:team/app:pull,push`.
    pub scopes: Vec<String>,
}

impl TokenServer {
    /// Generates a key and certificate and starts serving tokens for
    /// `user`/`password`.
    pub fn start(user: &str, password: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rbuild-token")
            .tempdir()
            .expect("temp dir");
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        let der = dir.path().join("cert.der");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "2",
            "-subj",
            "/CN=rbuild-test-token",
            "-keyout",
            path_str(&key),
            "-out",
            path_str(&cert),
        ]);
        openssl(&[
            "x509",
            "-in",
            path_str(&cert),
            "-outform",
            "DER",
            "-out",
            path_str(&der),
        ]);
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = listener.local_addr().expect("addr").to_string();
        let issued = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let forbidden = Arc::new(Mutex::new(Vec::new()));
        let lifetime = Arc::new(AtomicI64::new(TOKEN_LIFETIME));
        let issuer = Arc::new(TokenIssuer {
            basic: encode_base64(format!("{user}:{password}").as_bytes()),
            user: user.to_string(),
            key,
            cert_der_b64: encode_base64(&std::fs::read(&der).expect("read cert.der")),
            issued: issued.clone(),
            requests: requests.clone(),
            forbidden: forbidden.clone(),
            lifetime: lifetime.clone(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let dir = Arc::new(dir);
        {
            let stop = stop.clone();
            let dir = dir.clone();
            std::thread::spawn(move || {
                let _dir = dir;
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let issuer = issuer.clone();
                    std::thread::spawn(move || issuer.serve(conn));
                }
            });
        }
        Self {
            addr,
            issued,
            requests,
            forbidden,
            lifetime,
            cert,
            stop,
            _dir: dir,
        }
    }

    /// How many tokens were issued so far.
    pub fn tokens_issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    /// From now on, grants no access at all to `repository` (e.g.
    /// `team/app`), whoever asks.
    pub fn forbid(&self, repository: &str) {
        self.forbidden
            .lock()
            .expect("poisoned")
            .push(repository.to_string());
    }

    /// From now on, issues tokens whose `exp` claim is `seconds` after
    /// their issue (may be negative); their `expires_in` says the same
    /// (at least 1). The registry accepts a token until a minute after
    /// its `exp` (distribution's leeway for clock skew), so with
    /// `seconds = 2 - 60`, a token stops working about 2 s after issue.
    pub fn set_token_lifetime(&self, seconds: i64) {
        self.lifetime.store(seconds, Ordering::SeqCst);
    }

    /// The token requests with valid or no credentials so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().expect("poisoned").clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

impl TokenIssuer {
    /// Answers one request on `conn`, then closes it.
    fn serve(&self, mut conn: TcpStream) {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let Some(head) = read_head(&mut conn) else {
            return;
        };
        let (status, body) = self.answer(&head);
        let reason = match status {
            200 => "OK",
            401 => "Unauthorized",
            404 => "Not Found",
            _ => "Internal Server Error",
        };
        let mut response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if status == 401 {
            response.push_str("WWW-Authenticate: Basic realm=\"rbuild-test\"\r\n");
        }
        response.push_str("\r\n");
        response.push_str(&body);
        let _ = conn.write_all(response.as_bytes());
        let _ = conn.shutdown(Shutdown::Write);
    }

    /// Status and JSON body for the request with head `head`.
    fn answer(&self, head: &str) -> (u16, String) {
        let target = head
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path != "/token" {
            return (
                404,
                String::from(r#"{"errors":[{"code":"NOT_FOUND","message":"no such endpoint"}]}"#),
            );
        }
        let authorization = head.lines().skip(1).find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("authorization")
                .then(|| value.trim().to_string())
        });
        let user = match authorization {
            None => None,
            Some(a) => match a.split_once(' ') {
                Some((scheme, cred))
                    if scheme.eq_ignore_ascii_case("basic") && cred.trim() == self.basic =>
                {
                    Some(self.user.clone())
                }
                _ => {
                    return (
                        401,
                        String::from(
                            r#"{"errors":[{"code":"UNAUTHORIZED","message":"unauthorized: wrong user name or password"}]}"#,
                        ),
                    );
                }
            },
        };
        let mut scopes = Vec::new();
        let mut service = String::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match percent_decode(k).as_str() {
                "scope" => scopes.extend(percent_decode(v).split(' ').map(str::to_string)),
                "service" => service = percent_decode(v),
                _ => {}
            }
        }
        self.requests.lock().expect("poisoned").push(TokenRequest {
            user: user.clone(),
            scopes: scopes.clone(),
        });
        if service != TOKEN_SERVICE {
            return (
                401,
                format!(
                    r#"{{"errors":[{{"code":"UNAUTHORIZED","message":"unknown service {service:?}"}}]}}"#
                ),
            );
        }
        // `type:name:actions`; names may contain `:` (a registry host with a port).
        let forbidden = self.forbidden.lock().expect("poisoned").clone();
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter_map(|s| {
                let (kind, rest) = s.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                let granted: Vec<&str> = actions
                    .split(',')
                    .filter(|a| !a.is_empty() && (user.is_some() || *a == "pull"))
                    .filter(|_| !forbidden.iter().any(|f| f == name))
                    .collect();
                Some(serde_json::json!({"type": kind, "name": name, "actions": granted}))
            })
            .collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let lifetime = self.lifetime.load(Ordering::SeqCst);
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [self.cert_der_b64]});
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER,
            "sub": user.unwrap_or_default(),
            "aud": TOKEN_SERVICE,
            "exp": now.saturating_add_signed(lifetime),
            "nbf": now - 10,
            "iat": now,
            "jti": format!("rbuild-test-{now}-{n}"),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes())
        );
        let signature = match self.sign(signing_input.as_bytes()) {
            Ok(s) => s,
            Err(e) => {
                return (
                    500,
                    serde_json::json!({"errors": [{"code": "UNKNOWN", "message": e}]}).to_string(),
                );
            }
        };
        let jwt = format!("{signing_input}.{}", base64url(&signature));
        let body = serde_json::json!({
            "token": jwt,
            "access_token": jwt,
            "expires_in": lifetime.max(1),
        });
        (200, body.to_string())
    }

    /// RS256: an RSA PKCS#1 v1.5 signature over the SHA-256 of `data`.
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign", path_str(&self.key)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("openssl: {e}"))?;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(data)
            .map_err(|e| format!("openssl stdin: {e}"))?;
        let out = child
            .wait_with_output()
            .map_err(|e| format!("openssl: {e}"))?;
        if !out.status.success() || out.stdout.is_empty() {
            return Err(format!(
                "openssl dgst -sign: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(out.stdout)
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

/// Runs the `openssl` CLI, panicking when it fails.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed (see .ci/run)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Base64url without padding (JOSE).
fn base64url(data: &[u8]) -> String {
    encode_base64(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// Decodes `%XX` escapes and `+` (a space) in a query component.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let Some(b) = escaped {
            out.push(b);
            i += 3;
            continue;
        }
        match bytes[i] {
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads an HTTP request head (up to the blank line); `None` on EOF,
/// timeout or an oversized head.
fn read_head(conn: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).ok()?;
        if n == 0 || head.len() > 64 << 10 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// What a [`FaultProxy`] does to one accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways untouched.
    Pass,
    /// Wait for the client's first bytes, then close the socket with them
    /// unread (the kernel answers with a TCP reset); upstream is not contacted.
    ResetImmediately,
    /// Wait this long, then forward untouched.
    Delay(Duration),
    /// Forward, but only this many bytes upstream → client; then close
    /// both sides.
    TruncateResponseAfter(usize),
    /// Answer `503 Service Unavailable` (empty, `Connection: close`)
    /// without contacting upstream.
    Respond503,
    /// Answer `200 OK` with a manifest media type and a body of this many
    /// bytes (no `Content-Length`: the body ends when the connection
    /// closes) without contacting upstream: an answer too large to take.
    RespondOversized(usize),
    /// Forward the first `n - 1` requests of the connection (counted by
    /// their `… HTTP/1.1` request lines), then close both sides when the
    /// client sends the `n`-th, without forwarding it: a kept-alive
    /// connection lost in the middle of a conversation.
    CloseAtRequest(usize),
    /// Forward the first `n - 1` answers of the connection (counted by
    /// their `HTTP/1.1 …` status lines), then close both sides when the
    /// `n`-th arrives, without forwarding it: the request was served but
    /// the client never hears so.
    CloseAtResponse(usize),
    /// Read (and drop) what the client sends, never answer, and keep the
    /// connection open until the client gives up; upstream is not
    /// contacted: a server that accepts, then hangs.
    Stall,
    /// Forward, but only this many bytes upstream → client; then forward
    /// nothing more (dropping what upstream still sends) and keep the
    /// connection open until the client gives up: a transfer that
    /// stops moving in the middle.
    StallResponseAfter(usize),
}

/// A TCP proxy on a free loopback port in front of `upstream`, applying
/// queued [`Fault`]s one per accepted connection (then [`Fault::Pass`]).
/// Note that HTTP clients keep connections alive: a fault hits the next
/// *new* connection, not the next request. Stopped on drop (connections
/// under way finish on their own).
pub struct FaultProxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    plan: Arc<Mutex<VecDeque<Fault>>>,
    applied: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    requests: RequestLog,
    stop: Arc<AtomicBool>,
}

/// The request lines a [`FaultProxy`] forwarded, in the order seen.
type RequestLog = Arc<Mutex<Vec<String>>>;

impl FaultProxy {
    /// Starts a proxy to `upstream` (`host:port`) with an empty fault plan.
    pub fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = listener.local_addr().expect("addr").to_string();
        let plan: Arc<Mutex<VecDeque<Fault>>> = Arc::default();
        let applied = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = RequestLog::default();
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (plan, applied, connections, requests, stop) = (
                plan.clone(),
                applied.clone(),
                connections.clone(),
                requests.clone(),
                stop.clone(),
            );
            let upstream = upstream.to_string();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let fault = plan
                        .lock()
                        .expect("poisoned")
                        .pop_front()
                        .unwrap_or(Fault::Pass);
                    if fault != Fault::Pass {
                        applied.fetch_add(1, Ordering::SeqCst);
                    }
                    let upstream = upstream.clone();
                    let requests = requests.clone();
                    std::thread::spawn(move || proxy_connection(conn, &upstream, fault, &requests));
                }
            });
        }
        Self {
            addr,
            plan,
            applied,
            connections,
            requests,
            stop,
        }
    }

    /// The request lines (`PATCH /v2/… HTTP/1.1`) of the connections
    /// forwarded untouched ([`Fault::Pass`]), in the order seen.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("poisoned").clone()
    }

    /// Queues faults for the next new connections, after those already queued.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.plan.lock().expect("poisoned").extend(faults);
    }

    /// Drops the faults not applied yet.
    pub fn clear_faults(&self) {
        self.plan.lock().expect("poisoned").clear();
    }

    /// How many queued faults are still waiting for a connection.
    pub fn pending_faults(&self) -> usize {
        self.plan.lock().expect("poisoned").len()
    }

    /// How many faults (other than [`Fault::Pass`]) connections got so far.
    pub fn faults_applied(&self) -> usize {
        self.applied.load(Ordering::SeqCst)
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Answers the connection's first request with `head` and `body_len`
/// spaces, upstream not contacted, then closes it.
fn answer_directly(mut client: TcpStream, head: &[u8], body_len: usize) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = read_head(&mut client);
    let _ = client.write_all(head);
    let filler = [b' '; 64 << 10];
    let mut left = body_len;
    while left > 0 {
        let n = left.min(filler.len());
        // The client may hang up early (it refuses the body): done.
        if client.write_all(&filler[..n]).is_err() {
            return;
        }
        left -= n;
    }
    let _ = client.shutdown(Shutdown::Write);
    // Drain what the client still sends (a request body) so that closing
    // does not turn into a reset racing the answer.
    let _ = client.set_read_timeout(Some(Duration::from_secs(2)));
    let mut sink = [0u8; 16 << 10];
    while matches!(client.read(&mut sink), Ok(n) if n > 0) {}
}

/// Serves one proxied connection according to `fault`.
fn proxy_connection(mut client: TcpStream, upstream: &str, fault: Fault, requests: &RequestLog) {
    let mut limit = None;
    let mut stall = false;
    let mut close_at_request = None;
    let mut close_at_response = None;
    match fault {
        Fault::Pass => {}
        Fault::ResetImmediately => {
            let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = client.peek(&mut [0u8; 1]);
            return; // Closing with unread data sends a reset.
        }
        Fault::Delay(d) => std::thread::sleep(d),
        Fault::TruncateResponseAfter(n) => limit = Some(n),
        Fault::StallResponseAfter(n) => {
            limit = Some(n);
            stall = true;
        }
        Fault::Stall => {
            // Until the client closes (or 2 minutes, not to leak a thread
            // forever on a client that never does).
            let _ = client.set_read_timeout(Some(Duration::from_secs(120)));
            let mut sink = [0u8; 16 << 10];
            while matches!(client.read(&mut sink), Ok(n) if n > 0) {}
            return;
        }
        Fault::CloseAtRequest(n) => close_at_request = Some(n),
        Fault::CloseAtResponse(n) => close_at_response = Some(n),
        Fault::Respond503 => {
            answer_directly(
                client,
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                0,
            );
            return;
        }
        Fault::RespondOversized(n) => {
            answer_directly(
                client,
                b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n",
                n,
            );
            return;
        }
    }
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let (Ok(client_reader), Ok(server_writer)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let requests = requests.clone();
    let up = std::thread::spawn(move || match close_at_request {
        Some(n) => forward_until(client_reader, server_writer, b" HTTP/1.1\r\n", n),
        None => pipe(client_reader, server_writer, None, false, Some(&requests)),
    });
    match close_at_response {
        Some(n) => forward_until(server, client, b"HTTP/1.1 ", n),
        None => pipe(server, client, limit, stall, None),
    }
    let _ = up.join();
}

/// Copies `from` → `to` (at most `limit` bytes), then closes: after a normal
/// end, `to`'s write side; after reaching `limit`, both sockets entirely
/// (with `stall`, only once `from` ends, what it sends dropped meanwhile:
/// `from` is upstream, which closes after the client did).
/// With `log`, the request lines passing through are recorded.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    limit: Option<usize>,
    stall: bool,
    log: Option<&RequestLog>,
) {
    let mut left = limit.unwrap_or(usize::MAX);
    let mut buf = vec![0u8; 64 << 10];
    let mut unscanned = Vec::new();
    while left > 0 {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n.min(left),
        };
        if let Some(log) = log {
            record_requests(&mut unscanned, &buf[..n], log);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        left -= n;
    }
    if left == 0 && stall {
        let _ = from.set_read_timeout(Some(Duration::from_secs(120)));
        while matches!(from.read(&mut buf), Ok(n) if n > 0) {}
    }
    if left == 0 {
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    } else {
        let _ = to.shutdown(Shutdown::Write);
    }
}

/// Adds the request lines (`METHOD /path HTTP/1.1` CRLF) completed by
/// `data` to `log`; `unscanned` carries the end of the stream not yet
/// holding one over to the next read (its last 8 KiB: a request line is
/// shorter).
fn record_requests(unscanned: &mut Vec<u8>, data: &[u8], log: &RequestLog) {
    const END: &[u8] = b" HTTP/1.1\r\n";
    unscanned.extend_from_slice(data);
    let mut done = 0;
    while let Some(at) = unscanned[done..].windows(END.len()).position(|w| w == END) {
        let end = done + at;
        // `METHOD /path`: a body may end right before the method, with no
        // line break, so the line starts where the method's name does.
        let path = unscanned[done..end]
            .windows(2)
            .rposition(|w| w == b" /")
            .map_or(done, |i| done + i);
        let start = ["DELETE", "PATCH", "HEAD", "POST", "GET", "PUT"]
            .iter()
            .find(|m| unscanned[done..path].ends_with(m.as_bytes()))
            .map_or(done, |m| path - m.len());
        log.lock()
            .expect("poisoned")
            .push(String::from_utf8_lossy(&unscanned[start..end]).into_owned());
        done = end + END.len();
    }
    let keep_from = done.max(unscanned.len().saturating_sub(8 << 10));
    unscanned.drain(..keep_from);
}

/// Copies `from` → `to` until the `n`-th occurrence of `marker` (a request
/// or status line), then closes both sockets without forwarding the read
/// that holds it.
fn forward_until(mut from: TcpStream, mut to: TcpStream, marker: &[u8], n: usize) {
    let mut seen = 0;
    // The end of the previous read, to find request lines split across reads.
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let got = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(got) => got,
        };
        let mut window = std::mem::take(&mut tail);
        window.extend_from_slice(&buf[..got]);
        seen += window
            .windows(marker.len())
            .filter(|w| *w == marker)
            .count();
        if seen >= n {
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
            return;
        }
        if to.write_all(&buf[..got]).is_err() {
            break;
        }
        let keep = window.len().min(marker.len() - 1);
        tail = window[window.len() - keep..].to_vec();
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_taken_before_the_registry_listens_is_replaced_by_another() {
        // A connection's local end holds the port the registry is given
        // first, as one of a test running alongside may.
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let held = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        let taken = held.local_addr().unwrap().port();
        let mut ports = std::iter::once(taken).chain(std::iter::repeat_with(free_port));
        let registry =
            TestRegistry::launch_on_ports(AuthConfig::Open, || ports.next().expect("ports"));
        assert_ne!(registry.addr, format!("127.0.0.1:{taken}"));
        let mut conn = TcpStream::connect(&registry.addr).unwrap();
        conn.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
        drop(held);
    }
}
