//! The client against a real registry behind a bearer token service
//! (`TestRegistry::start_with_token_auth`): credentials from the docker
//! config, anonymous pulls, refused pushes, and tokens reused per scope.

mod common;

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::{digest, layers, platform, pull_and_compare, push_image};
use rbuild_registry::testing::{Fault, FaultProxy, TestRegistry, TokenServer};
use rbuild_registry::{Client, ClientOptions, Credentials, Reference, RegistryError};

/// One docker config directory for the whole test binary: `DOCKER_CONFIG`
/// is process-wide, so it is set once, before any client exists; each test
/// stores credentials under its own registry's address.
fn docker_config() {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: every test calls this before anything else, and
        // `OnceLock` makes the others wait until the variable is set.
        unsafe { std::env::set_var("DOCKER_CONFIG", dir.path().join("docker")) };
        dir
    });
}

/// Stores (or removes) the credentials of `registry`, one test at a time
/// (the config file is rewritten as a whole).
fn store(registry: &str, creds: Option<&Credentials>) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap();
    rbuild_registry::auth::store(registry, creds).unwrap();
}

fn creds(username: &str, password: &str) -> Credentials {
    Credentials {
        username: username.into(),
        password: password.into(),
    }
}

/// A token-auth registry for `user` with `password`, and a docker config
/// that gives it `stored` (the right password or not).
fn token_registry(user: &str, password: &str, stored: &str) -> (TestRegistry, TokenServer) {
    docker_config();
    let (reg, tokens) = TestRegistry::start_with_token_auth(user, password);
    store(&reg.addr, Some(&creds(user, stored)));
    (reg, tokens)
}

#[tokio::test]
async fn push_then_pull_with_tokens_is_byte_identical() {
    let (reg, tokens) = token_registry("alice", "s3cret", "s3cret");
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(ClientOptions::default()).unwrap();
    let r = Reference::parse(&format!("{}/team/app:v1", reg.addr)).unwrap();
    let layers = layers(3, 256 << 10);
    let manifest = push_image(&client, &r, dir.path(), &layers).await.unwrap();
    pull_and_compare(&client, &r, &manifest, &layers).await;
    // A fresh client (no cached tokens) pulls the same bytes, and by digest.
    let fresh = Client::new(ClientOptions::default()).unwrap();
    let by_digest =
        Reference::parse(&format!("{}/team/app@{}", reg.addr, digest(&manifest))).unwrap();
    pull_and_compare(&fresh, &by_digest, &manifest, &layers).await;
    assert!(fresh.has_blob(&r, &digest(&layers[0])).await.unwrap());
    let requests = tokens.requests();
    assert!(
        requests.iter().all(|t| t.user.as_deref() == Some("alice")
            && t.scopes
                .iter()
                .all(|s| s.starts_with("repository:team/app:"))),
        "{requests:?}"
    );
    // `login` checks the credentials against the token service.
    client
        .login(&reg.addr, &creds("alice", "s3cret"))
        .await
        .unwrap();
}

#[tokio::test]
async fn tokens_are_reused_per_scope() {
    let (reg, tokens) = token_registry("bob", "hunter2", "hunter2");
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(ClientOptions::default()).unwrap();
    let r = Reference::parse(&format!("{}/many:1", reg.addr)).unwrap();
    // 8 layers and a config: 9 × (HEAD, POST, PUT) + the manifest PUT =
    // 28 authenticated requests, all with the push scope.
    let layers = layers(8, 4096);
    let manifest = push_image(&client, &r, dir.path(), &layers).await.unwrap();
    assert_eq!(
        tokens.tokens_issued(),
        1,
        "one token for the push scope: {:?}",
        tokens.requests()
    );
    // Pulling (manifest + 8 blobs) needs the pull scope: one more token.
    pull_and_compare(&client, &r, &manifest, &layers).await;
    assert_eq!(
        tokens.tokens_issued(),
        2,
        "one token per scope: {:?}",
        tokens.requests()
    );
    let requests = tokens.requests();
    let mut scopes: Vec<&Vec<String>> = requests.iter().map(|t| &t.scopes).collect();
    scopes.dedup();
    assert_eq!(scopes.len(), requests.len(), "no scope asked twice");
    // Pushing the same image again: existence checks only, no new token.
    push_image(&client, &r, dir.path(), &layers).await.unwrap();
    assert_eq!(tokens.tokens_issued(), 2, "{:?}", tokens.requests());
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error() {
    let (reg, tokens) = token_registry("carol", "right", "wrong");
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(ClientOptions::default()).unwrap();
    let r = Reference::parse(&format!("{}/secret:1", reg.addr)).unwrap();
    let err = push_image(&client, &r, dir.path(), &layers(1, 100))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 401, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("401") && text.to_lowercase().contains("unauthorized"),
        "{text}"
    );
    let err = client.pull_manifest(&r, &platform()).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 401, .. }),
        "{err:?}"
    );
    let err = client
        .login(&reg.addr, &creds("carol", "wrong"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("login failed"), "{err}");
    assert_eq!(tokens.tokens_issued(), 0);
}

#[tokio::test]
async fn anonymous_pull_works_and_anonymous_push_is_refused() {
    docker_config();
    let (reg, tokens) = TestRegistry::start_with_token_auth("dave", "pw");
    let dir = tempfile::tempdir().unwrap();
    let r = Reference::parse(&format!("{}/public/app:1", reg.addr)).unwrap();
    let layers = layers(2, 10_000);
    store(&reg.addr, Some(&creds("dave", "pw")));
    let manifest = push_image(
        &Client::new(ClientOptions::default()).unwrap(),
        &r,
        dir.path(),
        &layers,
    )
    .await
    .unwrap();
    store(&reg.addr, None);
    let anonymous = Client::new(ClientOptions::default()).unwrap();
    pull_and_compare(&anonymous, &r, &manifest, &layers).await;
    let p = dir.path().join("new");
    std::fs::write(&p, b"not allowed").unwrap();
    let err = anonymous
        .push_blob(&r, &digest(b"not allowed"), &p)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 401, .. }),
        "{err:?}"
    );
    let err = anonymous
        .push_manifest(&r, "application/vnd.oci.image.manifest.v1+json", &manifest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 401, .. }),
        "{err:?}"
    );
    assert!(
        !anonymous
            .has_blob(&r, &digest(b"not allowed"))
            .await
            .unwrap(),
        "nothing was uploaded"
    );
    let requests = tokens.requests();
    assert!(
        requests.iter().any(|t| t.user.is_none()),
        "anonymous tokens were asked for: {requests:?}"
    );
}

/// A mount needs a token that also grants `pull` on the source repository;
/// without that access, the blob is uploaded instead.
#[tokio::test]
async fn cross_repository_mounts_with_tokens() {
    let (reg, tokens) = token_registry("erin", "pw", "pw");
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(ClientOptions::default()).unwrap();
    let base = Reference::parse(&format!("{}/base/img:1", reg.addr)).unwrap();
    let layers = layers(2, 50_000);
    push_image(&client, &base, dir.path(), &layers)
        .await
        .unwrap();
    let app = Reference::parse(&format!("{}/app/img:1", reg.addr)).unwrap();
    // No file to upload from: this only succeeds as a mount.
    let nowhere = dir.path().join("missing-blob");
    client
        .push_blob_from(&app, &digest(&layers[0]), &nowhere, Some("base/img"))
        .await
        .unwrap();
    assert!(client.has_blob(&app, &digest(&layers[0])).await.unwrap());
    let requests = tokens.requests();
    assert!(
        requests
            .iter()
            .any(|t| t.scopes == ["repository:app/img:pull,push", "repository:base/img:pull"]),
        "{requests:?}"
    );
    // Without access to the source, the mount is refused: upload instead.
    tokens.forbid("base/img");
    let other = Reference::parse(&format!("{}/other/img:1", reg.addr)).unwrap();
    let err = client
        .push_blob_from(&other, &digest(&layers[1]), &nowhere, Some("base/img"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing-blob"), "{err}");
    let p = dir.path().join("blob-2");
    client
        .push_blob_from(&other, &digest(&layers[1]), &p, Some("base/img"))
        .await
        .unwrap();
    let mut out = Vec::new();
    client
        .pull_blob(&other, &digest(&layers[1]), &mut out)
        .await
        .unwrap();
    assert!(out == layers[1]);
}

/// A cached token the registry stops taking in the middle of a push (it
/// expired): the PUT that gets the 401 fetches a new token and is sent
/// again, for a whole-blob PUT, a chunked upload and a pull.
#[tokio::test]
async fn expired_tokens_are_renewed_mid_operation() {
    docker_config();
    let (reg, tokens) = TestRegistry::start_with_token_auth("frank", "pw");
    let proxy = FaultProxy::start(&reg.addr);
    store(&proxy.addr, Some(&creds("frank", "pw")));
    // The registry takes each token for 2 to 3 s (see `set_token_lifetime`;
    // `exp` is in whole seconds): any token is dead after `DEAD`.
    tokens.set_token_lifetime(3 - 60);
    const DEAD: Duration = Duration::from_millis(4500);
    let dir = tempfile::tempdir().unwrap();
    let client = || {
        Client::new(ClientOptions {
            chunked_above: 256 << 10,
            chunk_size: 128 << 10,
            ..ClientOptions::default()
        })
        .unwrap()
    };
    let r = Reference::parse(&format!("{}/exp/app:1", proxy.addr)).unwrap();

    // Whole-blob PUT. The first connection carries HEAD (401), HEAD, POST
    // with a fresh token, and is lost as the PUT goes out; the PUT is sent
    // again on a second connection held back: with a dead token.
    let small: Vec<u8> = (0..100_000u32).map(|i| (i % 211) as u8).collect();
    let p = dir.path().join("small");
    std::fs::write(&p, &small).unwrap();
    proxy.push_faults([Fault::CloseAtRequest(4), Fault::Delay(DEAD)]);
    client().push_blob(&r, &digest(&small), &p).await.unwrap();
    assert_eq!(proxy.faults_applied(), 2);
    assert!(
        tokens.tokens_issued() >= 2,
        "the PUT's 401 fetched a second token: {:?}",
        tokens.requests()
    );

    // Chunked: lost at the second PATCH; the upload status GET comes
    // later, with a dead token. (A slow machine may see a token die
    // earlier too: hence "at least" here.)
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 199) as u8).collect();
    let p = dir.path().join("big");
    std::fs::write(&p, &big).unwrap();
    proxy.push_faults([Fault::CloseAtRequest(5), Fault::Delay(DEAD)]);
    let before = tokens.tokens_issued();
    client().push_blob(&r, &digest(&big), &p).await.unwrap();
    assert_eq!(proxy.faults_applied(), 4);
    assert!(
        tokens.tokens_issued() >= before + 2,
        "{:?}",
        tokens.requests()
    );

    // Pulls on a client whose pull token died meanwhile.
    let puller = client();
    let mut out = Vec::new();
    puller
        .pull_blob(&r, &digest(&small), &mut out)
        .await
        .unwrap();
    assert!(out == small);
    let before = tokens.tokens_issued();
    tokio::time::sleep(DEAD).await;
    let mut out = Vec::new();
    puller.pull_blob(&r, &digest(&big), &mut out).await.unwrap();
    assert!(out == big);
    assert_eq!(
        tokens.tokens_issued(),
        before + 1,
        "{:?}",
        tokens.requests()
    );
}
