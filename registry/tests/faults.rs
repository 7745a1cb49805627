//! The client through `FaultProxy` in front of a real registry: connections
//! reset, answered with 503, truncated, delayed or stalled. A fault applies to one
//! new TCP connection, and the client keeps connections alive, so each
//! test starts from a fresh client (an empty pool) and checks the proxy
//! really applied its faults.

mod common;

use std::time::{Duration, Instant};

use common::{digest, layers, platform, pull_and_compare, push_image};
use rbuild_registry::testing::{Fault, FaultProxy, TestRegistry};
use rbuild_registry::{Client, ClientOptions, MAX_MANIFEST_BYTES, Reference};

/// Pulls `blob` from `reference` without the proxy and checks its bytes.
async fn assert_registry_has(client: &Client, reference: &Reference, blob: &[u8], what: &str) {
    let mut out = Vec::new();
    client
        .pull_blob(reference, &digest(blob), &mut out)
        .await
        .unwrap();
    assert!(out == blob, "{what}: the registry has the blob");
}

/// A fresh registry behind a fault proxy, a temp dir, and `repo:1` as
/// reached through the proxy and directly. The registry runs while `reg`
/// is kept.
struct Proxied {
    reg: TestRegistry,
    proxy: FaultProxy,
    dir: tempfile::TempDir,
    via_proxy: Reference,
    direct: Reference,
}

fn proxied(repo: &str) -> Proxied {
    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(&reg.addr);
    let via_proxy = Reference::parse(&format!("{}/{repo}:1", proxy.addr)).unwrap();
    let direct = Reference::parse(&format!("{}/{repo}:1", reg.addr)).unwrap();
    Proxied {
        reg,
        proxy,
        dir: tempfile::tempdir().unwrap(),
        via_proxy,
        direct,
    }
}

fn client() -> Client {
    Client::new(ClientOptions::default()).unwrap()
}

#[tokio::test]
async fn pushes_survive_resets_and_503s() {
    let Proxied {
        reg,
        proxy,
        dir,
        via_proxy,
        direct,
    } = proxied("flaky/app");
    let layers = layers(3, 300 << 10);
    let (config, manifest) = common::image(&layers);

    // Every blob push and the manifest push start on a fresh connection
    // whose first two attempts fail (the client tries 3 times).
    let mut expected_faults = 0;
    for (i, blob) in std::iter::once(&config).chain(&layers).enumerate() {
        let faults = if i % 2 == 0 {
            [Fault::ResetImmediately, Fault::Respond503]
        } else {
            [Fault::Respond503, Fault::ResetImmediately]
        };
        proxy.push_faults(faults);
        expected_faults += 2;
        let p = dir.path().join(format!("blob-{i}"));
        std::fs::write(&p, blob).unwrap();
        client()
            .push_blob(&via_proxy, &digest(blob), &p)
            .await
            .unwrap();
        assert_eq!(proxy.faults_applied(), expected_faults);
    }
    proxy.push_faults([Fault::ResetImmediately, Fault::Respond503]);
    client()
        .push_manifest(
            &via_proxy,
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
        )
        .await
        .unwrap();
    assert_eq!(proxy.faults_applied(), expected_faults + 2);
    assert_eq!(proxy.pending_faults(), 0);

    // The registry has exactly the pushed bytes (read without the proxy).
    pull_and_compare(&client(), &direct, &manifest, &layers).await;
    let mut out = Vec::new();
    client()
        .pull_blob(&direct, &digest(&config), &mut out)
        .await
        .unwrap();
    assert_eq!(out, config);

    // A whole image push on one client: the faults hit its first connection.
    let again = Reference::parse(&format!("{}/flaky/again:1", proxy.addr)).unwrap();
    proxy.push_faults([Fault::Respond503, Fault::Respond503]);
    let before = proxy.faults_applied();
    push_image(&client(), &again, dir.path(), &layers)
        .await
        .unwrap();
    assert_eq!(proxy.faults_applied(), before + 2);
    let again_direct = Reference::parse(&format!("{}/flaky/again:1", reg.addr)).unwrap();
    pull_and_compare(&client(), &again_direct, &manifest, &layers).await;
}

/// The kept-alive connection dies in the middle of a blob push (HEAD, POST,
/// PUT): when the client sends the POST or the PUT, or after the registry
/// served them but before the client got the answer.
#[tokio::test]
async fn pushes_survive_a_connection_lost_mid_upload() {
    let Proxied {
        reg: _reg,
        proxy,
        dir,
        via_proxy,
        direct,
    } = proxied("mid/app");
    let faults = [
        Fault::CloseAtRequest(2),
        Fault::CloseAtRequest(3),
        Fault::CloseAtResponse(2),
        Fault::CloseAtResponse(3),
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        let blob: Vec<u8> = (0..200_000u32).map(|b| (b % 199) as u8 ^ i as u8).collect();
        let p = dir.path().join(format!("blob-{i}"));
        std::fs::write(&p, &blob).unwrap();
        proxy.push_faults([fault]);
        let connections = proxy.connections();
        let client = client();
        client
            .push_blob(&via_proxy, &digest(&blob), &p)
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(proxy.faults_applied(), i + 1, "{fault:?}");
        assert!(
            proxy.connections() >= connections + 2,
            "{fault:?}: a new connection was needed"
        );
        assert_registry_has(&client, &direct, &blob, &format!("{fault:?}")).await;
    }
}

#[tokio::test]
async fn pulls_survive_resets_and_503s() {
    let Proxied {
        reg: _reg,
        proxy,
        dir,
        via_proxy,
        direct,
    } = proxied("pull/app");
    let layers = layers(2, 100 << 10);
    let manifest = push_image(&client(), &direct, dir.path(), &layers)
        .await
        .unwrap();
    proxy.push_faults([Fault::ResetImmediately, Fault::Respond503]);
    pull_and_compare(&client(), &via_proxy, &manifest, &layers).await;
    assert_eq!(proxy.faults_applied(), 2);
    // Three failures in a row exhaust the attempts: an error, not a hang.
    proxy.push_faults([Fault::Respond503; 3]);
    let err = client()
        .pull_manifest(&via_proxy, &platform())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(proxy.faults_applied(), 5);
}

/// A 4 MiB blob pushed straight to a fresh registry (kept running while
/// the first value lives), and the reference that reaches it through a
/// fault proxy.
async fn blob_behind_proxy(repo: &str) -> (TestRegistry, FaultProxy, Vec<u8>, Reference) {
    let Proxied {
        reg,
        proxy,
        dir,
        via_proxy,
        direct,
    } = proxied(repo);
    let blob: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 241) as u8).collect();
    let path = dir.path().join("blob");
    std::fs::write(&path, &blob).unwrap();
    client()
        .push_blob(&direct, &digest(&blob), &path)
        .await
        .unwrap();
    (reg, proxy, blob, via_proxy)
}

#[tokio::test]
async fn truncated_blob_downloads_never_yield_wrong_bytes() {
    let (_reg, proxy, blob, via_proxy) = blob_behind_proxy("big/blob").await;
    // Cut in the status line, in the headers, early in the body, late in it.
    let mut outcomes = Vec::new();
    for cut in [5, 60, 1000, 64 << 10, 3 << 20] {
        let before = proxy.faults_applied();
        proxy.push_faults([Fault::TruncateResponseAfter(cut)]);
        let mut out = Vec::new();
        let result = client()
            .pull_blob(&via_proxy, &digest(&blob), &mut out)
            .await;
        assert_eq!(proxy.faults_applied(), before + 1, "cut at {cut}");
        match result {
            Ok(n) => {
                assert_eq!(n as usize, blob.len(), "cut at {cut}");
                assert_eq!(digest(&out), digest(&blob), "cut at {cut}");
                outcomes.push((cut, String::from("ok")));
            }
            Err(e) => {
                // What reached the sink is not the blob, and the caller is told.
                assert_ne!(digest(&out), digest(&blob), "cut at {cut}");
                assert!(out.len() < blob.len(), "cut at {cut}");
                outcomes.push((cut, e.to_string()));
            }
        }
    }
    eprintln!("{outcomes:#?}");
    // A cut before any byte of the body is a failed request: retried.
    for (cut, outcome) in &outcomes[..2] {
        assert_eq!(outcome, "ok", "cut at {cut}");
    }
    // And the proxy path is fine again.
    let mut out = Vec::new();
    client()
        .pull_blob(&via_proxy, &digest(&blob), &mut out)
        .await
        .unwrap();
    assert!(out == blob);
}

#[tokio::test]
async fn truncated_manifests_are_retried_or_refused() {
    let Proxied {
        reg: _reg,
        proxy,
        dir,
        via_proxy,
        direct,
    } = proxied("m/app");
    let layers = layers(1, 1000);
    let manifest = push_image(&client(), &direct, dir.path(), &layers)
        .await
        .unwrap();
    for cut in [10, 200, 400] {
        proxy.push_faults([Fault::TruncateResponseAfter(cut)]);
        let before = proxy.faults_applied();
        match client().pull_manifest(&via_proxy, &platform()).await {
            Ok(m) => assert_eq!(m.bytes, manifest, "cut at {cut}"),
            Err(e) => eprintln!("cut at {cut}: {e}"),
        }
        assert_eq!(proxy.faults_applied(), before + 1, "cut at {cut}");
    }
}

#[tokio::test]
async fn delays_within_the_timeout_succeed() {
    let Proxied {
        reg: _reg,
        proxy,
        dir,
        via_proxy,
        ..
    } = proxied("slow/app");
    let layers = layers(2, 50 << 10);
    proxy.push_faults([Fault::Delay(Duration::from_millis(1500))]);
    let start = Instant::now();
    let manifest = push_image(&client(), &via_proxy, dir.path(), &layers)
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(1500));
    assert_eq!(proxy.faults_applied(), 1);
    proxy.push_faults([Fault::Delay(Duration::from_millis(800))]);
    let start = Instant::now();
    pull_and_compare(&client(), &via_proxy, &manifest, &layers).await;
    assert!(start.elapsed() >= Duration::from_millis(800));
    assert_eq!(proxy.faults_applied(), 2);
}

fn client_with(options: ClientOptions) -> Client {
    Client::new(options).unwrap()
}

/// A client that gives up on a connection after 1 s without data.
fn impatient() -> Client {
    client_with(ClientOptions {
        first_byte_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..ClientOptions::default()
    })
}

/// A server that accepts and then never answers, or stops sending in the
/// middle of a body: the client notices within its idle timeout, retries
/// (or resumes), and when every attempt stalls, says so: no hang.
#[tokio::test]
async fn stalled_connections_time_out() {
    let Proxied {
        reg: _reg,
        proxy,
        dir,
        via_proxy,
        ..
    } = proxied("stall/app");
    let layers = layers(2, 1 << 20);
    let bounded = Duration::from_secs(30);

    // A push whose first connection hangs.
    proxy.push_faults([Fault::Stall]);
    let start = Instant::now();
    let manifest = tokio::time::timeout(
        bounded,
        push_image(&impatient(), &via_proxy, dir.path(), &layers),
    )
    .await
    .expect("the push does not hang")
    .unwrap();
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(proxy.faults_applied(), 1);

    // A blob download that stops moving after 200 KiB: resumed.
    proxy.push_faults([Fault::StallResponseAfter(200 << 10)]);
    let mut out = Vec::new();
    let start = Instant::now();
    let n = tokio::time::timeout(
        bounded,
        impatient().pull_blob(&via_proxy, &digest(&layers[0]), &mut out),
    )
    .await
    .expect("the pull does not hang")
    .unwrap();
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(n as usize, layers[0].len());
    assert!(out == layers[0]);
    assert_eq!(proxy.faults_applied(), 2);
    pull_and_compare(&impatient(), &via_proxy, &manifest, &layers).await;

    // Every attempt hangs: a timeout error, in bounded time.
    proxy.push_faults([Fault::Stall; 3]);
    let start = Instant::now();
    let err = tokio::time::timeout(bounded, impatient().pull_manifest(&via_proxy, &platform()))
        .await
        .expect("the pull does not hang")
        .unwrap_err();
    assert!(
        matches!(err, rbuild_registry::RegistryError::Timeout { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(15));
    assert_eq!(proxy.faults_applied(), 5);
}

/// A registry that accepts and never answers fails the request within
/// the first-byte timeout (times the attempts), not the minute-long idle
/// timeout that a started transfer gets: 181 s before.
#[tokio::test]
async fn a_server_that_never_answers_fails_within_seconds() {
    let Proxied {
        reg: _reg,
        proxy,
        via_proxy,
        ..
    } = proxied("silent/app");
    let defaults = ClientOptions::default();
    assert!(defaults.first_byte_timeout <= Duration::from_secs(10));
    assert!(defaults.connect_timeout <= Duration::from_secs(10));
    let client = client_with(ClientOptions {
        first_byte_timeout: Duration::from_secs(1),
        ..defaults.clone()
    });
    assert_eq!(defaults.idle_timeout, Duration::from_secs(60));
    proxy.push_faults([Fault::Stall; 3]);
    let start = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        client.pull_manifest(&via_proxy, &platform()),
    )
    .await
    .expect("the pull does not wait for the idle timeout")
    .unwrap_err();
    assert!(
        matches!(err, rbuild_registry::RegistryError::Timeout { after, .. } if after == Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(proxy.faults_applied(), 3);
}

/// A manifest larger than containerd's 4 MiB limit is refused while it
/// arrives, not read into memory whole.
#[tokio::test]
async fn an_oversized_manifest_is_refused() {
    let Proxied {
        reg: _reg,
        proxy,
        via_proxy,
        ..
    } = proxied("huge/app");
    proxy.push_faults([Fault::RespondOversized(64 << 20)]);
    let err = client()
        .pull_manifest(&via_proxy, &platform())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("larger than {MAX_MANIFEST_BYTES} bytes")),
        "{err}"
    );
    assert_eq!(proxy.faults_applied(), 1);
    // An image config, likewise (as a layer blob it would be taken).
    proxy.push_faults([Fault::RespondOversized(64 << 20)]);
    let mut out = Vec::new();
    let err = client()
        .pull_config(&via_proxy, &format!("sha256:{}", "0".repeat(64)), &mut out)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("larger than {MAX_MANIFEST_BYTES} bytes")),
        "{err}"
    );
    assert!(out.len() <= MAX_MANIFEST_BYTES, "{}", out.len());
    assert_eq!(proxy.faults_applied(), 2);
}

/// A chunked upload whose connection is lost at a PATCH (before the
/// registry got it, or after it stored it but before the client heard):
/// the client asks the registry where the upload stands and goes on.
#[tokio::test]
async fn chunked_uploads_recover_from_a_lost_chunk() {
    let Proxied {
        reg: _reg,
        proxy,
        dir,
        via_proxy,
        direct,
    } = proxied("chunks/app");
    let options = ClientOptions {
        chunked_above: 512 << 10,
        chunk_size: 256 << 10,
        idle_timeout: Duration::from_secs(2),
        ..ClientOptions::default()
    };
    // One connection: HEAD, POST, PATCH 1 (request 3), PATCH 2 (4), …
    let faults = [
        Fault::CloseAtRequest(4),
        Fault::CloseAtResponse(4),
        Fault::CloseAtRequest(6),
        Fault::CloseAtResponse(3),
        Fault::StallResponseAfter(0),
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        let blob: Vec<u8> = (0..(1_300_000u32 + i as u32))
            .map(|b| (b % 241) as u8 ^ (i as u8 * 17))
            .collect();
        let p = dir.path().join(format!("blob-{i}"));
        std::fs::write(&p, &blob).unwrap();
        proxy.push_faults([fault]);
        let client = client_with(options.clone());
        tokio::time::timeout(
            Duration::from_secs(60),
            client.push_blob(&via_proxy, &digest(&blob), &p),
        )
        .await
        .unwrap_or_else(|_| panic!("{fault:?}: the push hangs"))
        .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(proxy.faults_applied(), i + 1, "{fault:?}");
        assert_registry_has(&client, &direct, &blob, &format!("{fault:?}")).await;
    }
}

/// A blob download cut in the middle of the body goes on with a Range
/// request where it stopped; the digest is checked over the whole blob.
#[tokio::test]
async fn cut_blob_downloads_resume() {
    let (_reg, proxy, blob, via_proxy) = blob_behind_proxy("resume/blob").await;
    for cut in [1000, 64 << 10, 3 << 20] {
        let before = proxy.faults_applied();
        proxy.push_faults([Fault::TruncateResponseAfter(cut)]);
        let mut out = Vec::new();
        let n = client()
            .pull_blob(&via_proxy, &digest(&blob), &mut out)
            .await
            .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(proxy.faults_applied(), before + 1, "cut at {cut}");
        assert_eq!(n as usize, blob.len(), "cut at {cut}");
        assert!(out == blob, "cut at {cut}: exactly the blob, once");
    }
    // Cut twice in a row (the resumed answer too): still fine.
    proxy.push_faults([
        Fault::TruncateResponseAfter(100 << 10),
        Fault::TruncateResponseAfter(100 << 10),
    ]);
    let mut out = Vec::new();
    client()
        .pull_blob(&via_proxy, &digest(&blob), &mut out)
        .await
        .unwrap();
    assert!(out == blob);
    // Cut every time without progress: an error, and the sink holds
    // only part of the blob (the documented contract).
    proxy.push_faults([Fault::TruncateResponseAfter(100 << 10)]);
    proxy.push_faults([Fault::TruncateResponseAfter(10); 9]);
    let mut out = Vec::new();
    let err = client()
        .pull_blob(&via_proxy, &digest(&blob), &mut out)
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert!(out.len() < blob.len());
    proxy.clear_faults();
}

#[tokio::test]
async fn a_probe_tells_a_registry_there_from_one_that_cannot_be_reached() {
    let Proxied {
        reg: _reg,
        proxy,
        via_proxy,
        ..
    } = proxied("probed");
    let cap = Duration::from_millis(800);
    // Any answer is a registry there: here a 404 for a tag it lacks.
    client().probe(&via_proxy, cap).await.unwrap();
    proxy.push_faults([Fault::Respond503]);
    let e = client().probe(&via_proxy, cap).await.unwrap_err();
    assert!(e.to_string().contains("503"), "{e}");
    proxy.push_faults([Fault::Stall]);
    let started = Instant::now();
    let e = client().probe(&via_proxy, cap).await.unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(started.elapsed() < cap + Duration::from_millis(500));
    assert_eq!(proxy.faults_applied(), 2);
    // Nothing listens: refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = Reference::parse(&format!("127.0.0.1:{port}/probed:1")).unwrap();
    let e = client().probe(&closed, cap).await.unwrap_err();
    assert!(e.to_string().contains("Connection refused"), "{e}");
}
