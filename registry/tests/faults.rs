//! The client through `FaultProxy` in front of a real registry: connections
//! reset, answered with 503, truncated or delayed. A fault applies to one
//! new TCP connection, and the client keeps connections alive, so each
//! test starts from a fresh client (an empty pool) and checks the proxy
//! really applied its faults.

mod common;

use std::time::{Duration, Instant};

use common::{digest, layers, platform, pull_and_compare, push_image};
use rbuild_registry::testing::{Fault, FaultProxy, TestRegistry};
use rbuild_registry::{Client, ClientOptions, Reference};

fn client() -> Client {
    Client::new(ClientOptions::default()).unwrap()
}

#[tokio::test]
async fn pushes_survive_resets_and_503s() {
    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(&reg.addr);
    let dir = tempfile::tempdir().unwrap();
    let via_proxy = Reference::parse(&format!("{}/flaky/app:1", proxy.addr)).unwrap();
    let direct = Reference::parse(&format!("{}/flaky/app:1", reg.addr)).unwrap();
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
    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(&reg.addr);
    let dir = tempfile::tempdir().unwrap();
    let via_proxy = Reference::parse(&format!("{}/mid/app:1", proxy.addr)).unwrap();
    let direct = Reference::parse(&format!("{}/mid/app:1", reg.addr)).unwrap();
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
        let mut out = Vec::new();
        client
            .pull_blob(&direct, &digest(&blob), &mut out)
            .await
            .unwrap();
        assert!(out == blob, "{fault:?}: the registry has the blob");
    }
}

#[tokio::test]
async fn pulls_survive_resets_and_503s() {
    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(&reg.addr);
    let dir = tempfile::tempdir().unwrap();
    let direct = Reference::parse(&format!("{}/pull/app:1", reg.addr)).unwrap();
    let layers = layers(2, 100 << 10);
    let manifest = push_image(&client(), &direct, dir.path(), &layers)
        .await
        .unwrap();
    let via_proxy = Reference::parse(&format!("{}/pull/app:1", proxy.addr)).unwrap();
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

#[tokio::test]
async fn truncated_blob_downloads_never_yield_wrong_bytes() {
    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(&reg.addr);
    let dir = tempfile::tempdir().unwrap();
    let direct = Reference::parse(&format!("{}/big/blob:1", reg.addr)).unwrap();
    let blob: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 241) as u8).collect();
    let path = dir.path().join("blob");
    std::fs::write(&path, &blob).unwrap();
    client()
        .push_blob(&direct, &digest(&blob), &path)
        .await
        .unwrap();
    let via_proxy = Reference::parse(&format!("{}/big/blob:1", proxy.addr)).unwrap();
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
    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(&reg.addr);
    let dir = tempfile::tempdir().unwrap();
    let direct = Reference::parse(&format!("{}/m/app:1", reg.addr)).unwrap();
    let layers = layers(1, 1000);
    let manifest = push_image(&client(), &direct, dir.path(), &layers)
        .await
        .unwrap();
    let via_proxy = Reference::parse(&format!("{}/m/app:1", proxy.addr)).unwrap();
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
    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(&reg.addr);
    let dir = tempfile::tempdir().unwrap();
    let via_proxy = Reference::parse(&format!("{}/slow/app:1", proxy.addr)).unwrap();
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
