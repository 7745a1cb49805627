//! The client against a real registry (Debian's docker-registry on loopback).

use rbuild_registry::testing::{FaultProxy, TestRegistry};
use rbuild_registry::{Client, ClientOptions, Credentials, Platform, Reference, RegistryError};
use sha2::Digest;

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

fn platform() -> Platform {
    Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    }
}

/// Pushes a config and one layer, then the manifest; returns the manifest bytes.
async fn push_image(
    client: &Client,
    r: &Reference,
    dir: &std::path::Path,
    layer: &[u8],
) -> Vec<u8> {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    for (name, bytes) in [("config", &config[..]), ("layer", layer)] {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        client.push_blob(r, &digest(bytes), &p).await.unwrap();
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        digest(config),
        config.len(),
        digest(layer),
        layer.len()
    );
    client
        .push_manifest(
            r,
            "application/vnd.oci.image.manifest.v1+json",
            manifest.as_bytes(),
        )
        .await
        .unwrap();
    manifest.into_bytes()
}

#[tokio::test]
async fn push_then_pull_is_byte_identical() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(ClientOptions::default()).unwrap();
    let r = Reference::parse(&format!("{}/team/app:v1", reg.addr)).unwrap();
    let layer = vec![7u8; 3 << 20];
    let manifest = push_image(&client, &r, dir.path(), &layer).await;
    let pulled = client.pull_manifest(&r, &platform()).await.unwrap();
    assert_eq!(pulled.bytes, manifest);
    assert_eq!(pulled.digest, digest(&manifest));
    let mut out = Vec::new();
    let n = client
        .pull_blob(&r, &digest(&layer), &mut out)
        .await
        .unwrap();
    assert_eq!((n as usize, out == layer), (layer.len(), true));
    assert!(client.has_blob(&r, &digest(&layer)).await.unwrap());
    // Cross-repository mount within the registry.
    let other = Reference::parse(&format!("{}/team/other:v1", reg.addr)).unwrap();
    let p = dir.path().join("layer");
    client
        .push_blob_from(&other, &digest(&layer), &p, Some("team/app"))
        .await
        .unwrap();
    assert!(client.has_blob(&other, &digest(&layer)).await.unwrap());
    // By digest.
    let by_digest =
        Reference::parse(&format!("{}/team/app@{}", reg.addr, digest(&manifest))).unwrap();
    assert_eq!(
        client
            .pull_manifest(&by_digest, &platform())
            .await
            .unwrap()
            .bytes,
        manifest
    );
}

#[tokio::test]
async fn wrong_digests_and_missing_things_are_errors() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(ClientOptions::default()).unwrap();
    let r = Reference::parse(&format!("{}/x:1", reg.addr)).unwrap();
    let p = dir.path().join("blob");
    std::fs::write(&p, b"content").unwrap();
    let err = client
        .push_blob(&r, &digest(b"something else"), &p)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 400, .. }),
        "{err}"
    );
    let missing = client
        .pull_manifest(
            &Reference::parse(&format!("{}/nope:1", reg.addr)).unwrap(),
            &platform(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(missing, RegistryError::Status { status: 404, .. }),
        "{missing}"
    );
    assert!(
        missing.to_string().contains("MANIFEST_UNKNOWN")
            || missing.to_string().contains("NAME_UNKNOWN"),
        "{missing}"
    );
}

#[tokio::test]
async fn indexes_select_the_platform() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(ClientOptions::default()).unwrap();
    let amd = Reference::parse(&format!("{}/multi:amd64", reg.addr)).unwrap();
    let arm = Reference::parse(&format!("{}/multi:arm64", reg.addr)).unwrap();
    let m_amd = push_image(&client, &amd, dir.path(), b"amd").await;
    let m_arm = push_image(&client, &arm, dir.path(), b"arm").await;
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
        digest(&m_arm),
        m_arm.len(),
        digest(&m_amd),
        m_amd.len()
    );
    let tag = Reference::parse(&format!("{}/multi:latest", reg.addr)).unwrap();
    client
        .push_manifest(
            &tag,
            "application/vnd.oci.image.index.v1+json",
            index.as_bytes(),
        )
        .await
        .unwrap();
    let pulled = client.pull_manifest(&tag, &platform()).await.unwrap();
    assert_eq!(pulled.digest, digest(&m_amd));
    let arm64 = Platform {
        os: "linux".into(),
        architecture: "arm64".into(),
        variant: Some("v8".into()),
    };
    assert_eq!(
        client.pull_manifest(&tag, &arm64).await.unwrap().digest,
        digest(&m_arm)
    );
    let s390 = Platform {
        os: "linux".into(),
        architecture: "s390x".into(),
        variant: None,
    };
    assert!(client.pull_manifest(&tag, &s390).await.is_err());
}

#[tokio::test]
async fn basic_auth_from_the_docker_config() {
    let reg = TestRegistry::start_with_auth("alice", "s3cret");
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: the only test in this binary that reads DOCKER_CONFIG.
    unsafe { std::env::set_var("DOCKER_CONFIG", dir.path().join("docker")) };
    let client = Client::new(ClientOptions::default()).unwrap();
    let r = Reference::parse(&format!("{}/private:1", reg.addr)).unwrap();
    let err = client.pull_manifest(&r, &platform()).await.unwrap_err();
    assert!(err.to_string().contains("rbuild login"), "{err}");
    let wrong = Credentials {
        username: "alice".into(),
        password: "nope".into(),
    };
    let err = client.login(&reg.addr, &wrong).await.unwrap_err();
    assert!(err.to_string().contains("login failed"), "{err}");
    let right = Credentials {
        username: "alice".into(),
        password: "s3cret".into(),
    };
    client.login(&reg.addr, &right).await.unwrap();
    rbuild_registry::auth::store(&reg.addr, Some(&right)).unwrap();
    let config = std::fs::read_to_string(dir.path().join("docker/config.json")).unwrap();
    assert!(config.contains("YWxpY2U6czNjcmV0"), "{config}");
    let client = Client::new(ClientOptions::default()).unwrap();
    let m = push_image(&client, &r, dir.path(), b"private layer").await;
    assert_eq!(
        client.pull_manifest(&r, &platform()).await.unwrap().bytes,
        m
    );
    rbuild_registry::auth::store(&reg.addr, None).unwrap();
    assert!(rbuild_registry::auth::lookup(&reg.addr).unwrap().is_none());
}

#[tokio::test]
async fn large_blobs_go_up_in_chunks() {
    let reg = TestRegistry::start();
    // Only watches: it records the request lines it forwards.
    let proxy = FaultProxy::start(&reg.addr);
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(ClientOptions::default()).unwrap();
    let r = Reference::parse(&format!("{}/big:1", proxy.addr)).unwrap();
    let blob: Vec<u8> = (0..(70u32 << 20)).map(|i| (i % 253) as u8).collect();
    let path = dir.path().join("big");
    std::fs::write(&path, &blob).unwrap();
    client.push_blob(&r, &digest(&blob), &path).await.unwrap();
    let mut back = Vec::new();
    client
        .pull_blob(&r, &digest(&blob), &mut back)
        .await
        .unwrap();
    assert!(back == blob, "the chunked upload is byte-identical");
    // 70 MiB (above the 64 MiB default threshold) in 16 MiB chunks: five
    // PATCHes, then the one PUT that closes the upload with the digest.
    let requests = proxy.requests();
    let patches = requests.iter().filter(|l| l.starts_with("PATCH ")).count();
    assert_eq!(patches, 5, "{requests:#?}");
    let puts: Vec<&String> = requests.iter().filter(|l| l.starts_with("PUT ")).collect();
    assert_eq!(puts.len(), 1, "{requests:#?}");
    assert!(
        puts[0].contains("digest=sha256%3A") || puts[0].contains("digest=sha256:"),
        "{}",
        puts[0]
    );
}

/// A registry stand-in that answers 429 (then 503) before serving one
/// manifest: the client must wait and retry.
#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    use std::io::{Read, Write};
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},"layers":[]}"#;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let answers = [
            String::from(
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
            String::from(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                manifest.len(),
                String::from_utf8_lossy(manifest)
            ),
        ];
        for answer in answers {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            s.write_all(answer.as_bytes()).unwrap();
        }
    });
    let client = Client::new(ClientOptions::default()).unwrap();
    let r = Reference::parse(&format!("{addr}/flaky:1")).unwrap();
    let pulled = client.pull_manifest(&r, &platform()).await.unwrap();
    assert_eq!(pulled.bytes, manifest);
    server.join().unwrap();
}
